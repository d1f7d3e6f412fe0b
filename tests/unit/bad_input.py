"""Generators of inventories (hypothesis strategies: valid ones, and broken copies of them)
and an in-process runner of the `bm-upgrade` command, for the bad-input property tests."""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from bm_upgrade.cli import main

# -- running the command ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """What one `bm-upgrade` call printed and returned."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """stderr's lines, split where a terminal or a log would split them."""
        return self.err.rstrip("\n").split("\n") if self.err else []


def bm(argv: Sequence[str]) -> Ran:
    """`bm-upgrade ARGV` in this process (as a user runs it, minus the interpreter): any
    exception but argparse's exit propagates, so a traceback fails the test that called it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
            code = exc.code if isinstance(exc.code, int) else 2
    return Ran(code, out.getvalue(), err.getvalue())


def assert_refused_in_one_message(ran: Ran, inventory: str | None = None) -> None:
    """Exit 2 with nothing on stdout and, on stderr, either one line or the inventory's
    problem block (`<file>: N problem(s) in this inventory:` then one `  - <file>...` line a
    problem), never a traceback."""
    assert ran.code == 2, ran
    assert "Traceback" not in ran.err + ran.out
    lines = ran.err_lines
    assert lines and lines[0].startswith("error: "), ran
    if inventory is not None and len(lines) > 1:
        head = re.fullmatch(
            rf"error: {re.escape(inventory)}: (\d+) problem\(s\) in this inventory:", lines[0]
        )
        assert head is not None, ran
        assert int(head.group(1)) == len(lines) - 1, ran
        assert all(line.startswith(f"  - {inventory}") for line in lines[1:]), ran
    else:
        assert len(lines) == 1, ran


# -- values ----------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,11}", fullmatch=True)
CLUSTERS = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True)
VERSIONS = st.integers(0, 40).map(lambda n: f"4.2.{n}") | st.integers(0, 9).map(
    lambda n: f"4.2.1.{n}"
)
SHA = st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True)
# One folder name: anything a Unix file name may hold (spaces, quotes, $(), backticks, ';',
# non-ASCII), but no '/' or control character, and not '.' or '..'.
FOLDER = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc"], exclude_characters="/"),
    min_size=1,
    max_size=10,
).filter(lambda s: s.strip() not in ("", ".", ".."))
COMMANDS = st.text(st.characters(codec="utf-8"), max_size=40)
CRONS = st.sampled_from(["0 2 * * 0", "*/15 1-3 * * 1-5", "30 23 L * *", "0 0 1 1 *"])
ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])


def host_for(index: int, form: int) -> str:
    """Host ``index`` of a cluster, written as an IPv4 address, an IPv6 one or a name."""
    if form == 0:
        return f"10.{index // 250}.{index % 250}.1"
    if form == 1:
        return f"fd00::{index + 1:x}"
    return f"node-{index}.example.com"


@st.composite
def valid_inventories(draw: st.DrawFn) -> dict[str, Any]:
    """An inventory that validates: 1-3 regions of 1-3 stripes of 1-3 servers, clients,
    sometimes WAN orchestrators, optional settings; every node on a host of its own, paths
    holding any character a file name may, commands any text."""
    versions = draw(st.lists(VERSIONS, min_size=1, max_size=3, unique=True))
    kits = [
        {"version": v, "url": draw(st.sampled_from(["http://k/", "https://k/", "file:///k/"]))}
        | {"sha256": draw(SHA)}
        for v in versions
    ]
    region_count = draw(st.integers(1, 3))
    region_names = draw(
        st.lists(
            NAMES,
            min_size=region_count,
            max_size=region_count,
            unique_by=lambda n: n.replace("-", "_").replace(".", "_"),
        )
    )
    shapes = [
        (
            draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)),  # servers per stripe
            draw(st.integers(0, 2)),  # clients
            draw(st.sampled_from([(0, 0), (1, 0), (1, 1), (2, 1)])),  # masters, standbys
        )
        for _ in region_names
    ]
    wan = any(masters for _, _, (masters, _) in shapes)
    node_count = sum(sum(s) + c + m + sb for s, c, (m, sb) in shapes)
    names = iter(draw(st.lists(NAMES, min_size=node_count, max_size=node_count, unique=True)))
    form = draw(st.integers(0, 2))
    hosts = (host_for(i, form) for i in range(node_count))

    def path(*parts: str) -> str:
        return "/" + "/".join([*parts[:-1], draw(FOLDER), parts[-1]])

    def kit_node(name: str) -> dict[str, Any]:
        node = {"name": name, "host": next(hosts), "install_dir": path("opt", "kit")}
        if draw(st.booleans()):
            node["java_home"] = path("usr", "java")
        return node

    regions = []
    for region_name, (stripes, clients, (masters, standbys)) in zip(
        region_names, shapes, strict=True
    ):
        region: dict[str, Any] = {"name": region_name, "stripes": []}
        for s, servers in enumerate(stripes):
            members = []
            for _ in range(servers):
                server = kit_node(next(names))
                server |= {"tc_config": path("etc", "tc.xml"), "data_dir": path("var", "data")}
                if draw(st.booleans()):
                    server["management_port"] = draw(st.integers(1, 65535))
                members.append(server)
            region["stripes"].append({"name": f"stripe{s + 1}", "servers": members})
        region["clients"] = [
            {
                "name": next(names),
                "host": next(hosts),
                "lib_dir": path("opt", "lib"),
                "stop_command": draw(COMMANDS),
                "start_command": draw(COMMANDS),
            }
            for _ in range(clients)
        ]
        region["orchestrators"] = [
            kit_node(next(names)) | {"wan_xml": path("etc", "wan.xml"), "role": role}
            for role, count in (("master", masters), ("standby", standbys))
            for _ in range(count)
        ]
        if draw(st.booleans()):
            region["persistent"] = draw(st.booleans())
        regions.append(region)
    data: dict[str, Any] = {
        "cluster": draw(CLUSTERS),
        "target_version": draw(st.sampled_from(versions)),
        "kits": kits,
        "license_file": path("etc", "terracotta-license.key"),
        "ssh": {"user": draw(NAMES), "key_file": path("keys", "id"), "known_hosts": "/k/kh"},
        "persistent": draw(st.booleans()),
        "regions": regions,
    }
    if wan:
        masters_of = [
            r["name"]
            for r in regions
            if any(o["role"] == "master" for o in r.get("orchestrators", []))
        ]
        data["wan_master_region"] = draw(st.sampled_from(masters_of))
    if draw(st.booleans()):
        data["window"] = {
            "cron": draw(CRONS),
            "timezone": draw(ZONES),
            "length_minutes": draw(st.integers(1, 10_000)),
            "enabled": draw(st.booleans()),
        }
    if draw(st.booleans()):
        data["policy"] = {
            "failback": draw(st.booleans()),
            "client_batch_size": draw(st.integers(1, 50)),
            "parallel_stripes": draw(st.integers(1, 8)),
            "timeouts": {
                "sync_s": draw(st.floats(0.001, 1e6)),
                "stop_s": draw(st.integers(1, 999)),
            },
        }
    if draw(st.booleans()):
        data["management_security"] = {"user": draw(NAMES), "password_env": "BM_PASSWORD"}
    return data


# -- breaking them ---------------------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
BAD_PATHS = st.sampled_from(
    ["relative/kit", "../etc", "/opt/../etc", "/opt/./kit", "//opt/kit", "~/kit", "/", "", "/a\nb"]
)
BAD_VERSIONS = st.sampled_from(["4.3.1", "4.2", "5", "4.2.x", "v4.2.1", " ", "4.2.1-SNAPSHOT"])
BAD_HOSTS = st.sampled_from(["user@host", "http://h", "[fd00::1]", "a..b", "300.1.1.1", "-h", ""])
PATH_KEYS = {"install_dir", "tc_config", "data_dir", "wan_xml", "lib_dir", "license_file"}


def _places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists (the root is ``()``)."""
    found = [at]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _places(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _places(child, (*at, index))
    return found


def _set(data: Any, at: tuple[Any, ...], value: Any) -> Any:
    if not at:
        return value
    parent = data
    for part in at[:-1]:
        parent = parent[part]
    parent[at[-1]] = value
    return data


def _get(data: Any, at: tuple[Any, ...]) -> Any:
    for part in at:
        data = data[part]
    return data


@st.composite
def broken_inventories(draw: st.DrawFn) -> Any:
    """A valid inventory with one to three things broken: a key removed, a value of the wrong
    kind, an unknown key, a bad version, path or host, a node listed twice, or the whole
    document replaced by another kind of value."""
    data: Any = copy.deepcopy(draw(valid_inventories()))
    for _ in range(draw(st.integers(1, 3))):
        places = _places(data)
        at = draw(st.sampled_from(places))
        kind = draw(st.integers(0, 7))
        target = _get(data, at)
        if kind == 0 and at:  # a key or an entry removed
            parent = _get(data, at[:-1])
            del parent[at[-1]]
        elif kind == 1:  # a value of another kind
            data = _set(data, at, draw(JUNK))
        elif kind == 2 and isinstance(target, dict):  # an unknown key
            target[draw(st.text(min_size=1, max_size=12))] = draw(JUNK)
        elif kind == 3:
            keyed = [p for p in places if p and p[-1] in ("version", "target_version")]
            if keyed:
                data = _set(data, draw(st.sampled_from(keyed)), draw(BAD_VERSIONS))
        elif kind == 4:
            keyed = [p for p in places if p and p[-1] in PATH_KEYS]
            if keyed:
                data = _set(data, draw(st.sampled_from(keyed)), draw(BAD_PATHS))
        elif kind == 5:
            keyed = [p for p in places if p and p[-1] == "host"]
            if keyed:
                data = _set(data, draw(st.sampled_from(keyed)), draw(BAD_HOSTS))
        elif kind == 6 and isinstance(target, list) and target:  # an entry listed twice
            target.append(copy.deepcopy(draw(st.sampled_from(target))))
        elif kind == 7 and draw(st.integers(0, 9)) == 0:  # another kind of document
            data = draw(st.one_of(JUNK, st.lists(st.just(data), max_size=2)))
        if not isinstance(data, dict | list):
            break
    return data
