"""The sandbox hosts' sshd ForceCommand: journal each command, run it, report what it changed.

sshd runs ``python3 -S -I cmdwrap.py --host ADDR [--journal FILE] [--scan-root DIR]`` as the
login user with the client's command in ``$SSH_ORIGINAL_COMMAND``. The wrapper

1. appends ``command`` {host, command} to the journal (one O_APPEND write) BEFORE running it;
2. runs it with ``/bin/sh -c``, stdin/stdout/stderr inherited, and exits with its exit code
   (128 + N when a signal N killed it), as sshd itself would;
3. afterwards journals ``kit_unpacked`` {host, path, version} for each kit root (a folder
   holding ``server/lib/tc-version.properties``) that appeared under the scan root, and
   ``dirty_backup`` {server, path, action: "deleted"} for each
   ``dirty-objectdb-backup/dirty-objectdb-*`` folder that disappeared.

The sftp subsystem (``SSH_ORIGINAL_COMMAND`` is the sftp-server path) is exec'ed unchanged and
not journaled: it is a file transfer, not a command; unless the ``drop-upload`` fault's marker
(:data:`DROP_MARKER` in the scan root) is there: the first session to find it takes it and
relays the SFTP stream itself, forwarding whole requests until the next would pass the
marker's byte count, waits for sftp-server to answer each, then kills its own sshd session
process, which drops the SSH connection mid-upload (:func:`sftp_dropping`). A session without
command gets a shell.

It is copied next to each sshd's config and must stay stdlib-only and cheap: importing
``json`` is a large share of its start-up, so lines are encoded by hand; the scan
is bounded in depth (``bench/bench_sandbox.py`` prints what a wrapped command costs).

``cmdwrap.c`` is the same wrapper compiled (used where the machine has a C compiler: it saves
Python's start-up on every command); this module stays the reference and the fallback, and
journals for it the deletions it hands over with ``--deleted PATH...``.
"""

from __future__ import annotations

import os
import sys
import time

SCAN_DEPTH = 6
KIT_MARKER = os.path.join("server", "lib", "tc-version.properties")
BACKUP_PARENT = "dirty-objectdb-backup"
BACKUP_PREFIX = "dirty-objectdb-"
DROP_MARKER = ".sandbox-drop-upload"
"""In the scan root (the host's folder): the next SFTP session is cut after the number of
bytes the file holds (the ``drop-upload`` fault)."""

_ESCAPES: dict[int, str] = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES.update(
    {
        ord('"'): '\\"',
        ord("\\"): "\\\\",
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        ord("\t"): "\\t",
        ord("\b"): "\\b",
        ord("\f"): "\\f",
    }
)


def json_string(text: str) -> str:
    """``text`` as a JSON string literal (what json.dumps gives, without importing json)."""
    out = text.translate(_ESCAPES)
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (undecodable bytes in the command) are not valid UTF-8.
        out = "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in out)
    return '"' + out + '"'


def journal_line(event: str, fields: dict[str, object]) -> str:
    parts = [f'"t": {time.time()!r}', '"event": ' + json_string(event)]
    for key, value in fields.items():
        if isinstance(value, bool) or value is None:
            encoded = {True: "true", False: "false", None: "null"}[value]
        elif isinstance(value, (int, float)):
            encoded = repr(value)
        else:
            encoded = json_string(str(value))
        parts.append(json_string(key) + ": " + encoded)
    return "{" + ", ".join(parts) + "}\n"


def append(journal: str, event: str, **fields: object) -> None:
    """One line, one write(2) on an O_APPEND descriptor: lines of many writers never mix."""
    if not journal:
        return
    data = journal_line(event, fields).encode("utf-8")
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def scan(root: str, depth: int = SCAN_DEPTH) -> tuple[dict[str, str], set[str]]:
    """Kit roots ({path: version}) and dirty backup folders (set) under ``root``."""
    kits: dict[str, str] = {}
    backups: set[str] = set()
    if not root:
        return kits, backups
    todo = [(root, 0)]
    while todo:
        folder, level = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        names = {entry.name for entry in entries}
        if "server" in names and os.path.isfile(os.path.join(folder, KIT_MARKER)):
            kits[folder] = kit_version(os.path.join(folder, KIT_MARKER))
            continue  # nothing of interest inside a kit
        in_backup = os.path.basename(folder) == BACKUP_PARENT
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if in_backup and entry.name.startswith(BACKUP_PREFIX):
                backups.add(entry.path)
            elif level < depth:
                todo.append((entry.path, level + 1))
    return kits, backups


def kit_version(marker: str) -> str:
    try:
        with open(marker, encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition("=")
                if key.strip() == "version":
                    return value.strip()
    except OSError:
        pass
    return ""


def server_for(scan_root: str, host: str, path: str) -> str:
    """The sandbox server whose data ``path`` is (from sandbox.json above ``scan_root``)."""
    folder = os.path.abspath(scan_root)
    while True:
        candidate = os.path.join(folder, "sandbox.json")
        if os.path.isfile(candidate):
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            return ""
        folder = parent
    import json  # only here: it is slow to import and this path is rare

    try:
        with open(candidate, encoding="utf-8") as fh:
            servers: dict[str, dict[str, str]] = json.load(fh).get("servers", {})
    except (OSError, ValueError):
        return ""
    on_host = [name for name, info in servers.items() if info.get("host") == host]
    named = [name for name in on_host if os.sep + name + os.sep in path]
    return (named or on_host or [""])[0]


def parse_args(argv: list[str]) -> tuple[str, str, str]:
    options = {"--host": "", "--journal": "", "--scan-root": ""}
    i = 0
    while i < len(argv):
        if argv[i] == "--deleted":
            break
        if argv[i] in options and i + 1 < len(argv):
            options[argv[i]] = argv[i + 1]
            i += 2
        else:
            i += 1
    return options["--host"], options["--journal"], options["--scan-root"]


def journal_deleted(host: str, journal: str, scan_root: str, paths: list[str]) -> None:
    """``dirty_backup`` {server, path, action: deleted} for each path (the compiled wrapper's
    ``--deleted`` hand-over: finding the server needs sandbox.json)."""
    for path in paths:
        append(
            journal,
            "dirty_backup",
            server=server_for(scan_root, host, path),
            path=path,
            action="deleted",
        )


def is_sftp(command: str) -> bool:
    first = command.split(" ", 1)[0]
    return os.path.basename(first) == "sftp-server" and os.access(first, os.X_OK)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _frames(buffer: bytearray) -> list[bytes]:
    """Take the complete SFTP packets (a 4-byte length, then the packet) off ``buffer``."""
    whole = []
    while len(buffer) >= 4:
        size = 4 + int.from_bytes(buffer[:4], "big")
        if len(buffer) < size:
            break
        whole.append(bytes(buffer[:size]))
        del buffer[:size]
    return whole


def _session_process(listener: int) -> int | None:
    """The nearest ancestor that is an sshd process other than the host's listener: the
    process serving this connection."""
    pid = os.getppid()
    while pid > 1 and pid != listener:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            return None
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        if name.startswith("sshd"):
            return pid
        pid = int(stat[stat.rfind(")") + 2 :].split()[1])
    return None


def _take_marker(scan_root: str) -> int | None:
    """The ``drop-upload`` marker's byte count, taken (renamed) so one session only; None when
    there is no marker."""
    marker = os.path.join(scan_root, DROP_MARKER)
    taken = marker + ".fired"
    try:
        os.rename(marker, taken)
    except OSError:
        return None
    try:
        with open(taken, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return 0


def _relay(limit: int, server_in: int, server_out: int) -> int:
    """Relay the session between our stdin/stdout and sftp-server's pipes: whole requests go
    through until the next would pass ``limit`` bytes; once cut, wait for the answers to the
    requests sent. Returns the bytes forwarded."""
    import select

    pending, answers = bytearray(), bytearray()
    forwarded = requests = answered = 0
    cut = False
    while not (cut and answered >= requests):
        ready, _, _ = select.select([server_out] if cut else [0, server_out], [], [])
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                break
            pending += data
            for packet in _frames(pending):
                cut = cut or forwarded + len(packet) > limit
                if not cut:  # once cut, no later request reaches sftp-server
                    _write_all(server_in, packet)
                    forwarded += len(packet)
                    requests += 1
        if server_out in ready:
            data = os.read(server_out, 65536)
            if not data:
                break
            _write_all(1, data)
            answers += data
            answered += len(_frames(answers))
    return forwarded


def sftp_dropping(words: list[str], host: str, journal: str, scan_root: str) -> int | None:
    """Serve this SFTP session through :func:`_relay` and then drop its SSH connection, if
    the ``drop-upload`` marker is in ``scan_root``; None when it is not."""
    import signal

    limit = _take_marker(scan_root)
    if limit is None:
        return None
    to_server, server_in = os.pipe()
    server_out, from_server = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(to_server, 0)
        os.dup2(from_server, 1)
        for fd in (to_server, server_in, server_out, from_server):
            os.close(fd)
        os.execv(words[0], words)  # noqa: S606
    os.close(to_server)
    os.close(from_server)
    forwarded = _relay(limit, server_in, server_out)
    append(journal, "fault", kind="drop-upload", target=host, action="fired", bytes=forwarded)
    try:
        with open(os.path.join(scan_root, "run", "sshd.pid"), encoding="ascii") as fh:
            listener = int(fh.read().strip())
    except (OSError, ValueError):
        listener = 0
    session = _session_process(listener)
    if session is not None:
        os.kill(session, signal.SIGKILL)  # the SSH connection drops, as on a network fault
    os.close(server_in)
    os.waitpid(pid, 0)
    return 255


def run(command: str) -> int:
    env = dict(os.environ)
    # A host without ForceCommand would not have it: the tool must not see the wrapper.
    env.pop("SSH_ORIGINAL_COMMAND", None)
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", command], env)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    host, journal, scan_root = parse_args(argv)
    if "--deleted" in argv:
        journal_deleted(host, journal, scan_root, argv[argv.index("--deleted") + 1 :])
        return 0
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    if command is None:
        shell = os.environ.get("SHELL") or "/bin/sh"
        os.execv(shell, ["-" + os.path.basename(shell)])  # noqa: S606
    if is_sftp(command):
        words = command.split()
        dropped = sftp_dropping(words, host, journal, scan_root) if scan_root else None
        if dropped is not None:
            return dropped
        os.execv(words[0], words)  # noqa: S606
    append(journal, "command", host=host, command=command)
    kits_before, backups_before = scan(scan_root)
    code = run(command)
    kits_after, backups_after = scan(scan_root)
    for path in sorted(set(kits_after) - set(kits_before)):
        append(journal, "kit_unpacked", host=host, path=path, version=kits_after[path])
    journal_deleted(host, journal, scan_root, sorted(backups_before - backups_after))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
