"""First contact with a host for ``bm-upgrade trust-hosts``: the key it shows, what
known_hosts says of that key, and the recording of a key the operator accepted.

This is the only place a host key is written (see :mod:`bm_upgrade.remote.hostkeys`).
"""

from __future__ import annotations

from pathlib import Path

from bm_upgrade.inventory import SshSettings
from bm_upgrade.remote.client import Connection
from bm_upgrade.remote.hostkeys import HostKeyChecker, HostKeyFinding
from bm_upgrade.remote.known_hosts import KnownHosts


def check_known_hosts(settings: SshSettings) -> None:
    """Read the inventory's known_hosts file once, to fail before any connection.

    Raises:
        KnownHostsError: the file cannot be read or holds a line that is not a host key.
    """
    if settings.known_hosts:
        KnownHosts.load(Path(settings.known_hosts).expanduser())


def examine_host(host: str, settings: SshSettings) -> HostKeyFinding:
    """Connect to ``host`` (through the jump host when set) and judge the key it shows,
    without logging in to it and without recording anything.

    Raises:
        HostUnreachable: the host (or the jump host) cannot be reached.
        HostKeyRejected, AuthenticationFailed: the jump host refused (its own key is checked).
        KnownHostsError: the known_hosts file cannot be read.
    """
    key = Connection(host, settings, retries=1).offered_host_key()
    return HostKeyChecker(settings.known_hosts, accept_unknown=False).examine(
        host, settings.port, key
    )


def record_host_key(finding: HostKeyFinding, settings: SshSettings) -> None:
    """Append an accepted key to the inventory's known_hosts file.

    Raises:
        KnownHostsError: no known_hosts file is set, or it cannot be written.
    """
    if finding.status != "unknown":
        raise ValueError(f"only a new host's key is recorded, not a {finding.status} one")
    HostKeyChecker(settings.known_hosts, accept_unknown=False).record(finding)
