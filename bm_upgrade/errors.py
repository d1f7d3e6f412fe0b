"""The one exception tree of bm_upgrade.

Every message names the file/field or the host/server it concerns and says what to do next.
The CLI turns a :class:`UserError` into one message and exit code 2; anything else that
derives from :class:`BmUpgradeError` is an operational failure (exit 1). Lower-level errors
(paramiko, socket, OSError) are translated at the boundary that sees them, most specific
first, as ``raise Mapped(message) from exc``.

::

    BmUpgradeError
    ├── UserError                    the operator can fix it; exit 2
    │   ├── InventoryError           inventory file unreadable or invalid (carries every issue)
    │   ├── TopologyError            sandbox topology file invalid
    │   ├── PlanRefused              the upgrade would cause downtime / lose data / is not
    │   │                            a maintenance upgrade, and the operator did not consent
    │   ├── LicenseError             license key missing, expired, wrong product, lacks WAN
    │   └── KnownHostsError          the known_hosts file unreadable, or a line not a host key
    ├── RemoteError                  talking to a host failed (names the host)
    │   ├── HostUnreachable          connect failed / timed out (transient, retried)
    │   ├── AuthenticationFailed     wrong key/user (not retried)
    │   ├── HostKeyRejected          unknown or changed host key (not retried)
    │   ├── CommandFailed            non-zero exit (names command, exit code, stderr tail)
    │   ├── CommandTimeout           no exit within the timeout
    │   └── TransferFailed           upload/download failed or checksum mismatch
    │       └── TransferInterrupted  the connection broke mid-upload (resumed on a new one)
    └── StepFailed                   a procedure step could not finish; the cluster was left
                                     in a safe state and the message says where and what next
"""

from __future__ import annotations

from dataclasses import dataclass


class BmUpgradeError(Exception):
    """Base of every error bm_upgrade raises on purpose."""


class UserError(BmUpgradeError):
    """A mistake the operator can fix (input, consent, license). The CLI exits 2."""


@dataclass(frozen=True)
class FieldIssue:
    """One problem found in an input file.

    Attributes:
        path: the field path, e.g. ``regions[1].stripes[0].servers[2].host``
            (empty for the whole file).
        message: what is wrong and how to fix it.
    """

    path: str
    message: str

    def render(self, file: str) -> str:
        where = f"{file}: {self.path}" if self.path else file
        return f"{where}: {self.message}"


class _FileIssuesError(UserError):
    """An input file with one or more issues; ``str()`` lists all of them (one line for one)."""

    kind = "file"

    def __init__(self, file: str, issues: list[FieldIssue]) -> None:
        self.file = file
        self.issues = list(issues)
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.issues) == 1:  # one problem, one line
            return self.issues[0].render(self.file)
        lines = [f"{self.file}: {len(self.issues)} problem(s) in this {self.kind}:"]
        lines += [f"  - {issue.render(self.file)}" for issue in self.issues]
        return "\n".join(lines)


class InventoryError(_FileIssuesError):
    """The inventory file cannot be read or does not validate."""

    kind = "inventory"


class SecretUnavailable(UserError):
    """A secret the inventory names by its source (an environment variable, a file) cannot be
    read; the message names the source, never a value."""


class TopologyError(_FileIssuesError):
    """A sandbox topology file cannot be read or does not validate."""

    kind = "topology"


class PlanRefused(UserError):
    """The plan would cause downtime, lose data, or is not a maintenance upgrade.

    Attributes:
        reasons: one sentence per refused stripe/node, each naming it and the way out.
    """

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("upgrade refused:\n" + "\n".join(f"  - {r}" for r in self.reasons))


class LicenseError(UserError):
    """The license key cannot be used for this upgrade (names the file and the fix)."""


class KnownHostsError(UserError):
    """The known_hosts file cannot be read, or one of its lines is not a host key entry."""


class RemoteError(BmUpgradeError):
    """Talking to a host failed.

    Attributes:
        host: the host (address or name) concerned.
    """

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(message)


class HostUnreachable(RemoteError):
    """The host did not answer (refused, timed out, reset). Transient: retried with backoff."""


class AuthenticationFailed(RemoteError):
    """The host refused our credentials. Not retried: the user or key must be fixed."""


class HostKeyRejected(RemoteError):
    """The host's key is unknown or differs from known_hosts. Not retried."""


class CommandFailed(RemoteError):
    """A remote command exited non-zero.

    Attributes:
        command: the exact command line run.
        exit_code: its exit status.
        stdout: its standard output.
        stderr: its standard error.
    """

    def __init__(self, host: str, command: str, exit_code: int, stdout: str, stderr: str) -> None:
        self.command = command
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        tail = "\n".join(stderr.strip().splitlines()[-5:]) or "(no stderr)"
        super().__init__(
            host, f"on {host}: command exited {exit_code}: {command}\n  stderr: {tail}"
        )


class CommandTimeout(RemoteError):
    """A remote command did not finish within its timeout."""

    def __init__(self, host: str, command: str, timeout_s: float) -> None:
        self.command = command
        self.timeout_s = timeout_s
        super().__init__(
            host,
            f"on {host}: command did not finish within {timeout_s:g} s: {command}; "
            "check the host's load or raise the timeout in the inventory's policy.timeouts",
        )


class TransferFailed(RemoteError):
    """An upload or download failed, or its checksum did not match."""


class TransferInterrupted(TransferFailed):
    """The SSH connection or its SFTP session broke during an upload (not a stall, not a
    checksum): what was written stays in the ``.part`` file, which a new connection resumes."""


class StepFailed(BmUpgradeError):
    """A procedure step could not finish.

    The procedure leaves the cluster in a safe state before raising this; the message is one
    sentence saying what failed, on which node, and what the operator can do.

    Attributes:
        node: the server/client/orchestrator (or host) concerned.
    """

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(message)

    @classmethod
    def talking_to(
        cls, node: str, what: str, exc: RemoteError, then: str, *, why: str = ""
    ) -> StepFailed:
        """``what`` failed talking to the host of ``exc``: the sentence names that host,
        why (``why``, else the error's own words) and what to do (``then``)."""
        return cls(node, f"{what} failed talking to {exc.host} ({why or exc}); {then}")
