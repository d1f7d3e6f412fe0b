"""The one I/O seam to hosts: SSH over paramiko (the only package that imports paramiko).

- :class:`Connection` (client.py): one host, lazily opened, reused; ``run``,
  ``start_detached``, ``upload``. connect.py opens it (jump host, handshake, host key, login,
  retries); execution.py runs one command on a session (``CommandResult``).
- :class:`HostPool` (pool.py): one connection per host; ``fan_out`` over a group of hosts.
- quoting.py: every value placed in a command is quoted (``shell(argv)``).
- transfer.py: uploads with skip / resume / sha256 check.
- hostkeys.py, known_hosts.py, auth.py: host-key checking, reading known_hosts, and the keys
  offered; keyscan.py: first contact (``bm-upgrade trust-hosts``), the one place a host key
  is recorded.
- watchdog.py: a deadline for the paramiko calls that wait without one.
"""

from bm_upgrade.errors import KnownHostsError
from bm_upgrade.remote.client import Connection, jump_settings
from bm_upgrade.remote.execution import CommandResult
from bm_upgrade.remote.hostkeys import HostKeyFinding
from bm_upgrade.remote.keyscan import check_known_hosts, examine_host, record_host_key
from bm_upgrade.remote.pool import GroupResult, HostPool
from bm_upgrade.remote.quoting import Command, quote, shell
from bm_upgrade.remote.transfer import UploadResult

__all__ = [
    "Command",
    "CommandResult",
    "Connection",
    "GroupResult",
    "HostKeyFinding",
    "HostPool",
    "KnownHostsError",
    "UploadResult",
    "check_known_hosts",
    "examine_host",
    "jump_settings",
    "quote",
    "record_host_key",
    "shell",
]
