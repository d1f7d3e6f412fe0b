"""The sandbox topology file: what `bm-upgrade sandbox up` builds.

```yaml
name: demo                  # optional; the inventory's cluster name (default: from DIR)
version: 4.2.0              # what the cluster runs at start
kits: [4.2.0, 4.2.1]        # kits built and served over HTTP for upgrades
persistent: true
reconnect_window_s: 10      # optional, <client-reconnect-window>
java_home: inventory        # optional; where each host's Java is named: inventory | setenv |
                            # login | none (every host has one; its SSH login has no JAVA_HOME)
nodes_folder: ""            # optional; a folder of each host's root holding the node's kit,
                            # config, data and application (any file name: "it's $(x)")
regions:
  - name: east
    wan_role: master        # master | replica (needed, and used, when it has orchestrators)
    stripes: 2
    mirrors: 1              # mirrors per stripe; 0 = no HA
    clients: 2
    orchestrators: {master: 1, standby: 1}   # WAN orchestrators, each on its own host
    replica_disconnect_behavior: reconnectResync   # or remainDisconnected (replica regions)
    secured: false          # true: HTTPS, user and password on the management ports
timing: {start_s: 0.5, election_s: 1.0, sync_s: 1.0, sync_s_per_mb: 0.0}
```

:func:`load_topology` reports every problem at once, each naming the field and the fix.
A name (``small``, ``demo``) instead of a path loads a topology shipped in ``topologies/``.

``java_home``: every host of a server or orchestrator has a Java folder (``opt/java``), and
the kit's scripts exit 2 unless JAVA_HOME names one (docs/terracotta.md, "Server scripts").
``inventory`` (default): the inventory written names each node's ``java_home``; ``setenv``:
each kit root's ``server/bin/setenv.sh`` sets it (an upgrade carries that file over);
``login``: the hosts' SSH logins have it; ``none``: nothing names it, so the tool must refuse.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bm_upgrade.sandbox.topology_model import (
    JAVA_HOME_MODES,
    MAX_HOSTS,
    RegionSpec,
    Timing,
    Topology,
    TopologyError,
)

SHIPPED = Path(__file__).with_name("topologies")
VERSION_RE = re.compile(r"^4\.2\.\d+$")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,23}$")
CLUSTER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_TOP_KEYS = {
    "name",
    "version",
    "kits",
    "persistent",
    "reconnect_window_s",
    "regions",
    "timing",
    "java_home",
    "nodes_folder",
}
_REGION_KEYS = {
    "name",
    "wan_role",
    "stripes",
    "mirrors",
    "clients",
    "orchestrators",
    "replica_disconnect_behavior",
    "secured",
}
_BEHAVIORS = ("reconnectResync", "remainDisconnected")
_TIMING_KEYS = {"start_s", "election_s", "sync_s", "sync_s_per_mb"}


def resolve(path_or_name: str | Path) -> Path:
    """A path as given, or the shipped topology of that name (``small``: topologies/small.yaml)."""
    path = Path(path_or_name)
    shipped = SHIPPED / f"{path_or_name}.yaml"
    if path.is_file() or path.suffix or "/" in str(path_or_name) or not shipped.is_file():
        return path
    return shipped


def shipped_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def load_topology(path_or_name: str | Path) -> Topology:
    """Read and validate a topology file (or a shipped name); raises TopologyError."""
    path = resolve(path_or_name)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(
            file, [f"no such file; give a path or one of the shipped names {shipped_names()}"]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError(file, [f"cannot read the file ({exc})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TopologyError(file, [f"malformed YAML{where}; fix the syntax"]) from None
    return parse_topology(data, file)


def parse_topology(data: Any, file: str = "<topology>") -> Topology:  # noqa: PLR0912
    """Validate parsed YAML; raises TopologyError listing every problem."""
    issues: list[str] = []
    if not isinstance(data, dict):
        raise TopologyError(
            file,
            [
                "the top level must be a mapping with version, kits, "
                "persistent, regions (see the README)"
            ],
        )
    _unknown(data, _TOP_KEYS, "", issues)
    version = data.get("version")
    if version is None:
        issues.append("version: required; the version the cluster runs at start, e.g. 4.2.0")
    elif not VERSION_RE.match(str(version)):
        issues.append(
            f"version: {version!r} is not a BigMemory Max 4.2 maintenance version; "
            "write it like 4.2.0 (quote it if YAML reads it as a number)"
        )
    kits = data.get("kits", [version] if version is not None else [])
    if not isinstance(kits, list) or not kits:
        issues.append("kits: must be a non-empty list of versions, e.g. [4.2.0, 4.2.1]")
        kits = []
    for i, kit in enumerate(kits):
        if not VERSION_RE.match(str(kit)):
            issues.append(
                f"kits[{i}]: {kit!r} is not a 4.2 maintenance version; write it "
                "like 4.2.1 (the sandbox serves 4.2.x kits only)"
            )
    kits = [str(k) for k in kits]
    if len(set(kits)) != len(kits):
        issues.append("kits: a version is listed twice; list each once")
    if version is not None and kits and str(version) not in kits:
        issues.append(f"kits: the start version {version} is not listed; add it to kits")
    persistent = data.get("persistent", True)
    if not isinstance(persistent, bool):
        issues.append(f"persistent: {persistent!r} must be true or false")
    window = _number(data, "reconnect_window_s", 10.0, issues, "", low=0.1, high=600)
    name = data.get("name")
    if name is not None and not CLUSTER_RE.match(str(name)):
        issues.append(
            f"name: {name!r} is not a valid cluster name; use letters, digits and "
            "'_', starting with a letter"
        )
    java_home = data.get("java_home", JAVA_HOME_MODES[0])
    if java_home not in JAVA_HOME_MODES:
        issues.append(f"java_home: {java_home!r} must be one of {', '.join(JAVA_HOME_MODES)}")
    folder = data.get("nodes_folder", "")
    if not isinstance(folder, str) or folder in (".", "..") or re.search(r"[/\x00-\x1f]", folder):
        issues.append(
            f"nodes_folder: {folder!r} must be one folder name (no '/', no control character, "
            "not '.' or '..')"
        )
    regions = _regions(data.get("regions"), issues)
    timing = _timing(data.get("timing", {}), issues)
    topology = None
    if not issues:
        topology = Topology(
            version=str(version),
            kits=tuple(kits),
            persistent=bool(persistent),
            regions=tuple(regions),
            timing=timing,
            name=None if name is None else str(name),
            reconnect_window_s=window,
            java_home=str(java_home),
            nodes_folder=str(folder),
        )
        if topology.host_count() > MAX_HOSTS:
            issues.append(
                f"regions: {topology.host_count()} hosts (servers, clients, "
                "orchestrators) do not fit one loopback block; use at most "
                f"{MAX_HOSTS}"
            )
    if issues or topology is None:
        raise TopologyError(file, issues)
    return topology


def _unknown(data: dict[str, Any], known: set[str], prefix: str, issues: list[str]) -> None:
    for key in data:
        if key not in known:
            issues.append(
                f"{prefix}{key}: unknown key; remove it or check its spelling "
                f"(known: {', '.join(sorted(known))})"
            )


def _number(
    data: dict[str, Any],
    key: str,
    default: float,
    issues: list[str],
    prefix: str,
    *,
    low: float,
    high: float,
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        issues.append(f"{prefix}{key}: {value!r} must be a number from {low:g} to {high:g}")
        return default
    return float(value)


def _count(
    data: dict[str, Any],
    key: str,
    default: int | None,
    issues: list[str],
    prefix: str,
    *,
    low: int,
    high: int,
) -> int:
    value = data.get(key, default)
    if value is None:
        issues.append(f"{prefix}{key}: required; a whole number from {low} to {high}")
        return low
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        issues.append(f"{prefix}{key}: {value!r} must be a whole number from {low} to {high}")
        return low
    return value


def _secured(region: dict[str, Any], where: str, issues: list[str]) -> bool:
    """A region's ``secured`` (default false): HTTPS and a password on its management ports."""
    secured = region.get("secured", False)
    if not isinstance(secured, bool):
        issues.append(f"{where}secured: {secured!r} must be true or false")
        return False
    return secured


def _regions(raw: Any, issues: list[str]) -> list[RegionSpec]:
    if not isinstance(raw, list) or not raw:
        issues.append(
            "regions: required; a list of regions, each with name, stripes, mirrors, clients"
        )
        return []
    regions: list[RegionSpec] = []
    for i, region in enumerate(raw):
        where = f"regions[{i}]."
        if not isinstance(region, dict):
            issues.append(f"regions[{i}]: must be a mapping with name, stripes, mirrors, clients")
            continue
        _unknown(region, _REGION_KEYS, where, issues)
        name = str(region.get("name", ""))
        if not NAME_RE.match(name):
            issues.append(
                f"{where}name: {region.get('name')!r} is not a valid region name; use "
                "up to 24 letters, digits, '-' or '_', starting with a letter"
            )
        role = region.get("wan_role")
        if role not in (None, "master", "replica"):
            issues.append(f"{where}wan_role: {role!r} must be master or replica (or omitted)")
        masters, standbys = _orchestrators(region, where, issues)
        behavior = region.get("replica_disconnect_behavior", _BEHAVIORS[0])
        if behavior not in _BEHAVIORS:
            issues.append(
                f"{where}replica_disconnect_behavior: {behavior!r} must be "
                f"{' or '.join(_BEHAVIORS)}"
            )
        if masters + standbys and role not in ("master", "replica"):
            issues.append(
                f"{where}wan_role: a region with orchestrators needs wan_role: master or replica"
            )
        regions.append(
            RegionSpec(
                name=name,
                stripes=_count(region, "stripes", None, issues, where, low=1, high=16),
                mirrors=_count(region, "mirrors", 1, issues, where, low=0, high=3),
                clients=_count(region, "clients", 1, issues, where, low=0, high=32),
                wan_role=role if isinstance(role, str) else None,
                orchestrators_master=masters,
                orchestrators_standby=standbys,
                replica_disconnect_behavior=str(behavior),
                secured=_secured(region, where, issues),
            )
        )
    names = [r.name for r in regions]
    for i, name in enumerate(names):
        if name and name in names[:i]:
            issues.append(
                f"regions[{i}].name: region {name!r} is listed twice; give each "
                "region a unique name"
            )
    if sum(r.wan_role == "master" for r in regions) > 1:
        issues.append("regions: more than one region has wan_role: master; name one master")
    wan = [r for r in regions if r.orchestrator_count]
    if wan and not any(r.wan_role == "master" for r in wan):
        issues.append(
            "regions: orchestrators are configured but no region with orchestrators "
            "has wan_role: master; give the master region its orchestrators"
        )
    return regions


def _orchestrators(region: dict[str, Any], where: str, issues: list[str]) -> tuple[int, int]:
    raw = region.get("orchestrators") or {}
    if not isinstance(raw, dict):
        issues.append(f"{where}orchestrators: must be a mapping such as {{master: 1, standby: 1}}")
        return 0, 0
    _unknown(raw, {"master", "standby"}, f"{where}orchestrators.", issues)
    where = f"{where}orchestrators."
    masters = _count(raw, "master", 0, issues, where, low=0, high=3)
    standbys = _count(raw, "standby", 0, issues, where, low=0, high=3)
    if standbys and not masters:
        issues.append(
            f"{where}master: a region with standby orchestrators needs at least one "
            "master orchestrator"
        )
    return masters, standbys


def _timing(raw: Any, issues: list[str]) -> Timing:
    if not isinstance(raw, dict):
        issues.append(
            "timing: must be a mapping such as {start_s: 0.5, election_s: 1.0, sync_s: 1.0}"
        )
        return Timing()
    _unknown(raw, _TIMING_KEYS, "timing.", issues)
    defaults = Timing()
    return Timing(
        start_s=_number(raw, "start_s", defaults.start_s, issues, "timing.", low=0, high=600),
        election_s=_number(
            raw, "election_s", defaults.election_s, issues, "timing.", low=0.05, high=600
        ),
        sync_s=_number(raw, "sync_s", defaults.sync_s, issues, "timing.", low=0, high=3600),
        sync_s_per_mb=_number(
            raw, "sync_s_per_mb", defaults.sync_s_per_mb, issues, "timing.", low=0, high=600
        ),
    )
