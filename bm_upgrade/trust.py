"""``bm-upgrade trust-hosts INVENTORY``: first contact with a cluster's hosts.

Connects to the jump host (when the inventory sets one) and to every host of the inventory,
shows the fingerprint of each host's key (SHA256, as ``ssh-keygen -l`` prints it) and records
it in the inventory's known_hosts file on the operator's word: a y/N question per new host
on a terminal, or every new key shown with ``--yes``. Runs, reruns and the sensor never
record a key (:mod:`bm_upgrade.remote.hostkeys`); this command is how one gets there.

- a host already recorded is reported as known; a CHANGED (or revoked) key is never recorded;
- the jump host comes first: the other hosts are reached through it, so it must be trusted;
- exit 0: every host is known or was recorded; 1: a key CHANGED, a host could not be
  reached, or the operator declined a key; 2: a user's mistake (inventory, known_hosts file),
  or new keys without a terminal to ask on and without ``--yes`` (nothing is recorded then).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bm_upgrade.errors import RemoteError, UserError
from bm_upgrade.inventory import SshSettings, load_inventory
from bm_upgrade.remote import (
    HostKeyFinding,
    check_known_hosts,
    examine_host,
    jump_settings,
    record_host_key,
)

Ask = Callable[[str], bool]
"""Asks the operator a yes/no question; True for yes."""

_PARALLEL = 8


@dataclass
class _Tally:
    """What happened to the hosts so far."""

    problems: list[str] = field(default_factory=list)
    """Hosts that end in exit 1 (CHANGED, unreachable, declined)."""
    recorded: int = 0
    known: int = 0


def trust_hosts(
    inventory_path: str | Path, *, yes: bool, ask: Ask | None, out: TextIO, err: TextIO
) -> int:
    """Record the inventory's new host keys on the operator's word; returns the exit code.

    Args:
        yes: record every new key shown, without asking.
        ask: how to ask the operator (None: no terminal to ask on).

    Raises:
        UserError: the inventory or its known_hosts file cannot be used.
    """
    inventory = load_inventory(inventory_path)
    ssh = inventory.ssh
    if not ssh.known_hosts:
        raise UserError(
            f"{inventory_path}: ssh.known_hosts is not set; set it to the "
            "known_hosts file the host keys are to be recorded in"
        )
    check_known_hosts(ssh)
    where = Path(ssh.known_hosts).expanduser()
    tally = _Tally()
    groups: list[tuple[SshSettings, list[str]]] = []
    if ssh.jump_host is not None:
        groups.append((jump_settings(ssh), [ssh.jump_host.host]))
    groups.append((ssh, inventory.hosts()))
    for number, (settings, hosts) in enumerate(groups):
        new = _examine(settings, hosts, tally, out, err)
        if new and not yes and ask is None:
            print(
                f"not recorded: {len(new)} new host key(s) shown above and no terminal to "
                f"ask on; check each fingerprint against the host (ssh-keygen -lf "
                "/etc/ssh/ssh_host_<type>_key.pub on it), then rerun with --yes to record "
                f"them in {where}",
                file=err,
            )
            return 1 if tally.problems else 2
        for finding in new:
            question = (
                f"record {finding.name} {finding.key_type} {finding.fingerprint} in {where}? [y/N] "
            )
            if yes or (ask is not None and ask(question)):
                record_host_key(finding, settings)
                tally.recorded += 1
                print(f"{finding.name}: recorded", file=out)
            else:
                tally.problems.append(finding.name)
                print(f"{finding.name}: not recorded", file=out)
        if number == 0 and len(groups) > 1 and tally.problems:
            print(
                f"failed: the other hosts are reached through jump host {hosts[0]}, which "
                "is not trusted; settle it first and rerun",
                file=err,
            )
            return 1
    if tally.problems:
        print(
            f"failed: {len(tally.problems)} host(s) not trusted: "
            f"{', '.join(tally.problems)}; see above",
            file=err,
        )
        return 1
    print(f"{tally.known} host(s) already known, {tally.recorded} recorded in {where}", file=out)
    return 0


def _examine(
    settings: SshSettings, hosts: list[str], tally: _Tally, out: TextIO, err: TextIO
) -> list[HostKeyFinding]:
    """Each host's key, judged and shown; returns the new ones (in inventory order)."""

    def one(host: str) -> HostKeyFinding | RemoteError:
        try:
            return examine_host(host, settings)
        except RemoteError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(_PARALLEL, len(hosts)))) as pool:
        answers = list(pool.map(one, hosts))
    new = []
    for host, answer in zip(hosts, answers, strict=True):
        if isinstance(answer, RemoteError):
            tally.problems.append(host)
            print(f"failed: {answer}", file=err)
        elif answer.status == "known":
            tally.known += 1
            print(f"{answer.name}: known ({answer.key_type} {answer.fingerprint})", file=out)
        elif answer.status == "unknown":
            new.append(answer)
            print(f"{answer.name}: NEW key {answer.key_type} {answer.fingerprint}", file=out)
        else:
            tally.problems.append(host)
            print(f"failed: {answer.message}", file=err)
    return new
