"""Which Java each node's kit scripts run with: the inventory's ``java_home``.

Every kit script exits 2 unless JAVA_HOME names a directory (docs/terracotta.md, "Server
scripts"). The inventory may name it once for the cluster (``java_home`` at the top) and per
server or orchestrator (its own ``java_home`` wins). :func:`with_default_java_home` resolves
that once, while the inventory is read: a node without its own value gets the cluster's, so
``node.java_home`` is the effective value everywhere. Unset on both means the host's own
environment, or the kit root's ``server/bin/setenv.sh``, provides it.
"""

from __future__ import annotations

from typing import Any

from bm_upgrade.inventory_checks import remote_path_problem

JAVA_HOME_FIELD = "java_home"


def with_default_java_home(data: Any) -> Any:
    """The raw inventory ``data`` with the cluster's ``java_home`` given to every server and
    orchestrator that names none; ``data`` itself when there is no usable default (an
    invalid one is reported once, at the top, not again on every node)."""
    if not isinstance(data, dict):
        return data
    default = data.get(JAVA_HOME_FIELD)
    regions = data.get("regions")
    if not isinstance(default, str) or remote_path_problem(default.strip()):
        return data
    if not isinstance(regions, list):
        return data
    return {**data, "regions": [_region(region, default.strip()) for region in regions]}


def _region(region: Any, default: str) -> Any:
    if not isinstance(region, dict):
        return region
    out = dict(region)
    if isinstance(region.get("stripes"), list):
        out["stripes"] = [_stripe(stripe, default) for stripe in region["stripes"]]
    if isinstance(region.get("orchestrators"), list):
        out["orchestrators"] = [_node(orch, default) for orch in region["orchestrators"]]
    return out


def _stripe(stripe: Any, default: str) -> Any:
    if not isinstance(stripe, dict) or not isinstance(stripe.get("servers"), list):
        return stripe
    return {**stripe, "servers": [_node(server, default) for server in stripe["servers"]]}


def _node(node: Any, default: str) -> Any:
    if isinstance(node, dict):
        if node.get(JAVA_HOME_FIELD) is None:
            return {**node, JAVA_HOME_FIELD: default}
        return node
    if getattr(node, JAVA_HOME_FIELD, "") is None:
        return node.model_copy(update={JAVA_HOME_FIELD: default})
    return node
