"""The one place a command running one of the kit's server scripts is built.

Every call of ``start-tc-server.sh``, ``stop-tc-server.sh``, ``server-stat.sh``, ``version.sh``,
``start-wan.sh`` and ``stop-wan.sh`` (docs/terracotta.md, "Server scripts") goes through
:func:`script_argv`, so what every script needs from the node it runs for is added here once.
"""

from __future__ import annotations

from bm_upgrade.inventory.kitroot import KitRoot
from bm_upgrade.inventory.nodes import Orchestrator, Server


def script_env(node: Server | Orchestrator) -> list[str]:
    """What goes before a kit script's path in ``node``'s command (empty: nothing)."""
    del node
    return []


def script_argv(
    node: Server | Orchestrator, name: str, *args: str, root: KitRoot | None = None
) -> list[str]:
    """The argv running ``<root>/server/bin/<name> args`` for ``node``; ``root`` defaults to
    the node's kit root (a kit unpacked elsewhere, e.g. in its work folder, passes its own)."""
    kit = root if root is not None else node.kit_root
    return [*script_env(node), kit.script(name), *args]
