"""YAML loading with bounded work: a size cap on the file and on what its aliases expand to.

A YAML alias (``*name``) repeats an anchored value (``&name``) without copying it, so a 1 KB
file of nested aliases ("billion laughs") stands for billions of values: PyYAML builds it
cheaply as shared objects, then validating the inventory walks every repeat (tens of seconds
and gigabytes of memory for 1 KB). So the composed node graph is measured first, counting each
repeat but visiting each node once (linear in the file), and refused past :data:`MAX_VALUES`.
libyaml bounds the nesting depth itself (the Python parser's recursion limit does otherwise).
Anchors within the limits (``<<: *defaults``) still work.
"""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it (several times faster), else the Python one."""

MAX_BYTES = 1 << 20
"""An inventory larger than 1 MiB is refused unread (a large real one is ~50 KB)."""
MAX_VALUES = 100_000
"""Scalars, lists and mappings, counting every repeat an alias makes (a large real inventory
holds ~10 000)."""


class YamlTooLarge(ValueError):
    """The YAML holds (or its aliases expand to) more than the loader accepts."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_size(root: yaml.Node, limit: int = MAX_VALUES) -> int:
    """How many values ``root`` stands for, every alias expanded, computed without expanding.

    Raises:
        YamlTooLarge: more than ``limit``, or an alias inside the value it names (endless).
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the ancestors of the node being measured
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, measured = stack.pop()
        key = id(node)
        if measured:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > limit:
                raise YamlTooLarge(f"its aliases (*name) expand to more than {limit} values")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlTooLarge("an alias (*name) repeats a value it is part of, endlessly")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def load(text: str) -> Any:
    """Parse one YAML document with :data:`SafeLoader`, refusing one that expands too far.

    Raises:
        YamlTooLarge: see :func:`expanded_size`, or nested too deeply for the Python parser.
        yaml.YAMLError: malformed YAML (libyaml refuses deep nesting this way).
    """
    loader = SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node)
        return loader.construct_document(node)
    except RecursionError:
        raise YamlTooLarge("its lists and mappings are nested too deeply") from None
    finally:
        loader.dispose()
