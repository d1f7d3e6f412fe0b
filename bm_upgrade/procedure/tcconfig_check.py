"""Preflight's read of every server's tc-config: persistence is read, not trusted.

Each server's ``tc_config`` is read over SSH (one command per host, each file bounded) and
parsed (:mod:`bm_upgrade.probes.tcconfig`). The inventory must agree with it on what the
upgrade relies on: ``<restartable enabled>`` (the inventory's ``persistent``, per region), the
server's ``<data>`` (``data_dir``), ``<tsa-port>`` and ``<management-port>``, and the servers
of its stripe. Where they disagree preflight refuses, naming the file, the host, the server
and the element, before anything is touched (docs/safety.md rule 1). What was read is the
truth from then on: the plan's data-loss refusal takes the persistence read here
(docs/safety.md rule 7).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from bm_upgrade.errors import StepFailed
from bm_upgrade.inventory import Inventory, Region, Server, Stripe
from bm_upgrade.probes.reads import Runner
from bm_upgrade.probes.tcconfig import (
    MAX_BYTES,
    TcConfig,
    TcConfigError,
    parse_tc_config,
    resolved_path,
)
from bm_upgrade.remote import HostPool
from bm_upgrade.remote.quoting import MARK, quote

log = logging.getLogger(__name__)

_UNREADABLE = "unreadable"


@dataclass
class TcConfigReading:
    """What preflight read of the tc-configs.

    Attributes:
        persistent: per ``region/stripe``, ``<restartable enabled>`` as its servers' files say
            (a stripe whose files disagree counts as not persistent).
        problems: where the inventory disagrees with a file, or a file cannot be read.
        warnings: what could not be compared for certain (a ``<data>`` left to the product's
            default or holding a parameter substitution).
    """

    persistent: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_command(paths: list[str]) -> str:
    """One shell command printing every file of ``paths`` (at most :data:`MAX_BYTES` + 1 bytes
    each) after a marker line ``<MARK>file <i>``, or a marker ``<MARK>unreadable <i>``."""
    parts = []
    for index, path in enumerate(paths):
        q = quote(path)
        parts.append(
            f"if [ -f {q} ] && [ -r {q} ]; then echo {quote(f'{MARK}file {index}')}; "
            f"head -c {MAX_BYTES + 1} -- {q}; echo; "
            f"else echo {quote(f'{MARK}{_UNREADABLE} {index}')}; fi"
        )
    return "; ".join(parts)


def split_files(output: str, count: int) -> list[str | None]:
    """The text of each file :func:`read_command` printed (None: unreadable or missing)."""
    texts: list[str | None] = [None] * count
    current: list[str] | None = None
    for line in output.splitlines(keepends=True):
        if line.startswith(MARK):
            kind, _, number = line[len(MARK) :].strip().partition(" ")
            current = None
            if kind == "file" and number.isdigit() and int(number) < count:
                current = []
                texts[int(number)] = ""
                index = int(number)
            continue
        if current is not None:
            texts[index] = (texts[index] or "") + line
    return texts


def read_host(conn: Runner, paths: list[str]) -> dict[str, str | None]:
    """Each of ``paths`` on the connection's host: its text, or None when it cannot be read."""
    result = conn.run(read_command(paths), timeout=60.0, check=False)
    return dict(zip(paths, split_files(result.stdout, len(paths)), strict=True))


def _where(server: Server) -> str:
    return f"{server.tc_config} on {server.host}"


def _compare(
    inventory: Inventory, region: Region, stripe: Stripe, server: Server, config: TcConfig
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of one server against its parsed tc-config."""
    where = _where(server)
    seen = config.servers.get(server.name)
    if seen is None:
        names = ", ".join(config.servers) or "none"
        return [
            f'{where} has no <server name="{server.name}"> (it names {names}); the '
            "inventory's server name must be the tc-config's"
        ], []
    problems: list[str] = []
    warnings: list[str] = []
    claimed = inventory.region_persistent(region)
    if config.restartable != claimed:
        problems.append(
            f'{where}: <restartable enabled="{str(config.restartable).lower()}"> but the '
            f"inventory says persistent: {str(claimed).lower()} for region {region.name}; "
            "correct the inventory's persistent"
        )
    for element, read, field_name, claim in (
        ("tsa-port", seen.tsa_port, "tsa_port", server.tsa_port),
        ("management-port", seen.management_port, "management_port", server.management_port),
    ):
        if read != claim:
            problems.append(
                f"{where}: <{element}> of server {server.name} is {read} but the inventory's "
                f"{field_name} is {claim}; correct the inventory"
            )
    if seen.data is None:
        warnings.append(
            f"{where}: server {server.name} has no <data>, so the product's default is used; "
            f"its data_dir {server.data_dir} is taken on trust"
        )
    else:
        data = resolved_path(seen.data, server.tc_config)
        if data is None:
            warnings.append(
                f"{where}: <data> of server {server.name} is {seen.data!r}, which only the "
                f"server expands; its data_dir {server.data_dir} is taken on trust"
            )
        elif data != posixpath.normpath(server.data_dir):
            problems.append(
                f"{where}: <data> of server {server.name} is {data} but the inventory's "
                f"data_dir is {server.data_dir}; correct the inventory"
            )
    configured = set(config.stripe_of(server.name))
    listed = {s.name for s in stripe.servers}
    if configured != listed:
        problems.append(
            f"{where}: server {server.name}'s stripe holds {', '.join(sorted(configured))} "
            f"but the inventory's stripe {region.name}/{stripe.name} holds "
            f"{', '.join(sorted(listed))}; make the inventory's stripes the tc-config's "
            "mirror groups"
        )
    return problems, warnings


def judge(inventory: Inventory, texts: dict[tuple[str, str], str | None]) -> TcConfigReading:
    """Compare ``inventory`` with the files read: ``texts`` by ``(host, tc_config)``."""
    reading = TcConfigReading()
    parsed: dict[tuple[str, str], TcConfig | str] = {}
    for key, text in texts.items():
        if text is None:
            parsed[key] = "it cannot be read (missing, or not readable by the SSH user)"
            continue
        try:
            parsed[key] = parse_tc_config(text)
        except TcConfigError as exc:
            parsed[key] = str(exc)
    for region, stripe in inventory.stripes():
        restartable: list[bool] = []
        for server in stripe.servers:
            config = parsed.get((server.host, server.tc_config))
            if config is None:
                continue  # not read (its host is unreachable: reported as such)
            if isinstance(config, str):
                reading.problems.append(
                    f"{_where(server)} (tc_config of server {server.name}): {config}; "
                    "correct the path in the inventory or the file"
                )
                continue
            problems, warnings = _compare(inventory, region, stripe, server, config)
            reading.problems += problems
            reading.warnings += warnings
            restartable.append(config.restartable)
        if restartable:
            reading.persistent[f"{region.name}/{stripe.name}"] = all(restartable)
    return reading


def read_tc_configs(
    inventory: Inventory, pool: HostPool
) -> tuple[dict[tuple[str, str], str | None], dict[str, str]]:
    """Every server's tc-config text by ``(host, path)``, one command per host, side by side;
    and per host that could not be asked, why."""
    by_host: dict[str, list[str]] = {}
    for _, _, server in inventory.servers():
        paths = by_host.setdefault(server.host, [])
        if server.tc_config not in paths:
            paths.append(server.tc_config)
    outcome = pool.fan_out(list(by_host), lambda conn: read_host(conn, by_host[conn.host]))
    texts: dict[tuple[str, str], str | None] = {}
    for host, files in outcome.results.items():
        texts.update({(host, path): text for path, text in files.items()})
    return texts, {host: str(error) for host, error in outcome.errors.items()}


def check_tc_configs(inventory: Inventory, pool: HostPool) -> TcConfigReading:
    """Read every server's tc-config and compare it with the inventory.

    Raises:
        StepFailed: naming each file, host, server and element that disagrees with the
            inventory, each file that cannot be read, each host that could not be asked;
            nothing was touched.
    """
    texts, errors = read_tc_configs(inventory, pool)
    reading = judge(inventory, texts)
    reading.problems += [
        f"the tc-configs on {host} could not be read ({why})" for host, why in errors.items()
    ]
    if reading.problems:
        raise StepFailed("preflight", _sentence(reading.problems))
    for line in reading.warnings:
        log.warning("preflight: %s", line)
    return reading


def _sentence(problems: Iterable[str]) -> str:
    return (
        "the tc-config disagrees with the inventory: "
        + "; ".join(problems)
        + "; nothing was touched; the tc-config is what the servers run with, so fix the "
        "inventory (or the file) and rerun"
    )
