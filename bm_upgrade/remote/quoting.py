"""Build shell command lines from argument vectors, quoting every value.

Every value the tool places in a remote command goes through :func:`shell` (or
:func:`quote`), so a path holding spaces, quotes or ``$(...)`` reaches the program as one
literal argument and is never interpreted by the remote shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Protocol

Command = str | Sequence[str]
"""A command: an argv list (quoted here) or a line the caller already built with quoting."""


class Ran(Protocol):
    """What a command returned, as far as its callers read it (a connection's
    ``CommandResult``, or a test's scripted answer)."""

    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


def quote(value: str) -> str:
    """One value quoted for a POSIX shell."""
    return shlex.quote(value)


class Unquoted(str):
    """A piece of shell the tool itself wrote (never a value from elsewhere): :func:`shell`
    passes it as it is, e.g. :data:`STDIN_VALUE`."""

    __slots__ = ()


STDIN_VALUE = Unquoted('"$(cat)"')
"""An argument whose value is the command's standard input (see :class:`WithInput`): a secret
given this way is in no command line, log or journal of the host's commands."""


class WithInput(str):
    """A command line whose standard input is ``stdin`` (the connection writes it, then
    closes it). ``str()`` and ``repr()`` are the line alone."""

    __slots__ = ("stdin",)
    stdin: str

    def __new__(cls, line: str, stdin: str) -> WithInput:
        obj = super().__new__(cls, line)
        obj.stdin = stdin
        return obj

    def __repr__(self) -> str:
        return repr(str(self))


def fed(line: str, stdin: str | None) -> str:
    """``line`` with ``stdin`` as its standard input (``line`` itself when None)."""
    return line if stdin is None else WithInput(line, stdin)


def shell(argv: Sequence[str]) -> str:
    """An argv list as one shell command line, each element quoted.

    Raises:
        ValueError: the argv is empty, or a string was passed where a list was expected.
    """
    if isinstance(argv, str):
        raise ValueError("shell() takes an argv list, not a string; split it into arguments")
    if not argv:
        raise ValueError("shell() needs at least the program to run")
    return " ".join(arg if isinstance(arg, Unquoted) else shlex.quote(str(arg)) for arg in argv)


def command_line(command: Command) -> str:
    """The command line to send: a string as is, an argv list through :func:`shell`."""
    return command if isinstance(command, str) else shell(command)


KILL_GRACE_S = 5.0
"""Seconds a timed-out command gets between SIGTERM and SIGKILL (see :func:`timed`)."""


def _seconds(value: float) -> str:
    # Plain decimal: ``timeout`` reads neither "1e+03" nor a 0 (which would mean no limit).
    return f"{max(value, 0.1):.3f}".rstrip("0").rstrip(".")


def timed(line: str, seconds: float, kill_after: float = KILL_GRACE_S) -> str:
    """``line`` run under coreutils ``timeout`` so that a command past its time dies on the
    host, not only in the client's eyes.

    After ``seconds`` the command's process group (its shell and every child it did not
    detach) gets SIGTERM, and SIGKILL ``kill_after`` seconds later; ``timeout`` then exits 124
    (137 after the SIGKILL). A program started with :func:`detached` is spared: ``setsid``
    gave it a session and process group of its own. A command that exits in time is left
    alone, children it left running included.
    """
    return f"timeout -k {_seconds(kill_after)} {_seconds(seconds)} sh -c {quote(line)}"


def detached(argv: Sequence[str], log_path: str, cwd: str | None = None) -> str:
    """A command line that starts ``argv`` detached from the SSH session and prints its pid.

    The program runs in its own session (``setsid``), ignores the hang-up (``nohup``), reads
    nothing and writes stdout and stderr to ``log_path``, so it survives the SSH connection
    closing. Without job control a background job is not a process-group leader, so
    ``setsid`` and ``nohup`` both ``exec`` in place and ``$!`` is the program's own pid.
    """
    start = f"setsid nohup {shell(argv)} >>{quote(log_path)} 2>&1 </dev/null & echo $!"
    return f"cd {quote(cwd)} && {start}" if cwd else start


def printed_pid(output: str) -> int | None:
    """The pid a :func:`detached` command printed (its last line), None if it printed none."""
    last = output.strip().splitlines()[-1:] or [""]
    return int(last[0]) if last[0].isdigit() else None


MARK = "@@bm-upgrade "
"""Start of the marker lines that separate the parts of one composite command's output."""


def echo_mark(name: str) -> str:
    """A command printing the marker line ``name`` (see :func:`split_marked`)."""
    return shell(["echo", MARK + name])


def split_marked(output: str) -> dict[str, list[str]]:
    """The output of a command whose parts are separated by :func:`echo_mark`: marker name ->
    the non-blank lines after it (stripped); the lines before the first marker under ``""``.

    Only whole lines count as markers: a process listing (``ps``) shows the marker too, inside
    the line of the ``sh -c`` running the command, but never at its start.
    """
    sections: dict[str, list[str]] = {"": []}
    current = sections[""]
    for line in output.splitlines():
        if line.startswith(MARK):
            current = sections.setdefault(line[len(MARK) :].strip(), [])
        elif line.strip():
            current.append(line.strip())
    return sections
