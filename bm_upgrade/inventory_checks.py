"""Inventory checks that concern what the tool does with a value later: remote paths (the kit
swap moves a whole kit root), host values (they go into SSH connections and URLs) and the
names the Dagster graph gives stripes.

Plain Python with no bm_upgrade imports besides the error types (the inventory's validators
call it, and so do :mod:`bm_upgrade.probes` and the Dagster layer), so the layering holds:
:func:`stripe_nodes` is the one op-naming rule, shared by the inventory's collision check and
the job's node names.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterable, Iterator

from bm_upgrade.errors import FieldIssue

REMOTE_PATH_FIELDS = (
    "install_dir",
    "tc_config",
    "data_dir",
    "wan_xml",
    "lib_dir",
    "console_log",
    "java_home",
)
"""Every field holding a path on a remote host."""

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MIRRORS_NODE_PREFIX = "upgrade_mirrors_"
"""A stripe's first node: ``upgrade_mirrors_<region>_<stripe>`` (defs/jobs.py)."""
FAILOVER_NODE_PREFIX = "failover_"
"""A stripe's second node: ``failover_<region>_<stripe>``."""


# -- remote paths ---------------------------------------------------------------------------
def remote_path_problem(path: str) -> str | None:
    """Why ``path`` is not an absolute, normalised path on a host (None: it is).

    One trailing ``/`` is allowed; ``..``, ``.``, ``//``, ``~`` and the root itself are not:
    the tool compares paths as written (is this data folder inside that kit root?), and a kit
    root that is not what it looks like may be moved aside or deleted.
    """
    if _CONTROL.search(path):
        return f"{path!r} holds a control character (a newline?); write the path on one line"
    if not path.startswith("/"):
        return (
            f"{path!r} is not an absolute path; write it from the root, such as "
            "/opt/terracotta/bigmemory-max (a remote path has no ~ or working folder)"
        )
    bare = path[:-1] if path.endswith("/") and len(path) > 1 else path
    if bare == "/":
        return "'/' is the root folder itself; name the folder the field means"
    normal = posixpath.normpath(bare)
    if normal != bare or "//" in bare:
        return (
            f"{path!r} is not normalised (no '..', '.' or '//' parts); write it as "
            f"{normal!r} if that is the folder you mean"
        )
    return None


# -- hosts ----------------------------------------------------------------------------------
def host_problem(host: str) -> str | None:
    """Why ``host`` is not a hostname (RFC 1123) or an IPv4/IPv6 literal (None: it is)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    hint = (
        "; write a hostname (letters, digits, '-' and '.') or an IP address such as "
        "10.0.0.1 or fd00::1, nothing else"
    )
    if "@" in host:
        return f"{host!r} holds a user; put the login user in ssh.user{hint}"
    if "://" in host or "/" in host:
        return f"{host!r} is a URL or a path, not a host{hint}"
    if host.startswith("[") and host.endswith("]"):
        return f"{host!r}: write an IPv6 address without brackets ({host[1:-1]})"
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return f"{host!r} is not a valid host name{hint}"
    if all(label.isdigit() for label in labels):
        return f"{host!r} is not a valid IPv4 address{hint}"
    return None


def canonical_host(host: str) -> str:
    """One spelling per host, for telling whether two nodes share one (case, IPv6 forms)."""
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host.lower().rstrip(".")


def url_host(host: str) -> str:
    """``host`` as the host part of a URL: an IPv6 literal in brackets, anything else
    unchanged. A zone (``fe80::1%eth0``) keeps its plain ``%``: Python's http.client hands
    the bracketed text to the resolver as it is, and the resolver wants ``%eth0``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{host}]" if address.version == 6 else host


# -- graph names ----------------------------------------------------------------------------
def graph_name(*parts: str) -> str:
    """A valid Dagster name from inventory names (which may hold '-' and '.'): the job's node
    names (``failover_<region>_<stripe>``) are built with this."""
    return "_".join(parts).replace("-", "_").replace(".", "_")


def stripe_nodes(region: str, stripe: str) -> tuple[str, str]:
    """The graph nodes of one stripe, in their order: ``upgrade_mirrors_<region>_<stripe>``,
    then ``failover_<region>_<stripe>``.

    Only stripes can spell these prefixes (the graph's other nodes are preflight, download,
    stage_kit, verify_servers, restart_clients_<n>, wan_cycle and report), so two stripes'
    nodes collide exactly when their ``<region>_<stripe>`` do.
    """
    name = graph_name(region, stripe)
    return MIRRORS_NODE_PREFIX + name, FAILOVER_NODE_PREFIX + name


def stripe_node_issues(stripes: Iterable[tuple[str, str, str]]) -> Iterator[FieldIssue]:
    """Stripes whose graph nodes would collide, given ``(field path, region, stripe)``: two
    stripes named apart only by '-', '.' or '_' (``stripe-1``, ``stripe.1``), or a region and
    stripe that spell another's (region ``east_1``, stripe ``a`` and region ``east``, stripe
    ``1_a``)."""
    owners: dict[str, tuple[str, str, str]] = {}
    for path, region, stripe in stripes:
        name = graph_name(region, stripe)
        first = owners.setdefault(name, (path, region, stripe))
        if first[0] != path and first[1:] != (region, stripe):  # exact twins: reported apart
            mirrors, failover = stripe_nodes(region, stripe)
            yield FieldIssue(
                path,
                f"stripe {stripe!r} of region {region!r} and stripe "
                f"{first[2]!r} of region {first[1]!r} ({first[0]}) both "
                f"become the job steps {mirrors} and {failover} ('-' and "
                "'.' become '_'); rename one of them",
            )
