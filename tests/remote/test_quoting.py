"""Command building: every value quoted, so a shell reads each back as one literal argument."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bm_upgrade.remote.quoting import (
    command_line,
    detached,
    echo_mark,
    shell,
    split_marked,
    timed,
)
from tests.e2e.journal_check import untimed

NASTY = [
    "/opt/my kit/bin",
    "it's",
    'say "hi"',
    "$(touch /tmp/pwned)",
    "`id`",
    "a;b|c&d",
    "*",
    "~",
    "new\nline",
    "",
]


def test_shell_round_trips_nasty_values() -> None:
    argv = ["printf", "%s\\0", *NASTY]
    assert shlex.split(shell(argv)) == argv


def test_shell_runs_in_a_real_shell() -> None:
    out = subprocess.run(
        ["sh", "-c", shell(["printf", "%s\\0", *NASTY])], capture_output=True, check=True
    ).stdout
    assert out.decode().split("\0")[:-1] == NASTY


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"])),
        min_size=1,
    )
)
def test_shell_round_trip_property(argv: list[str]) -> None:
    assert shlex.split(shell(argv)) == argv


def test_shell_refuses_strings_and_empty() -> None:
    with pytest.raises(ValueError, match="argv list"):
        shell("ls -l")
    with pytest.raises(ValueError, match="at least"):
        shell([])


def test_command_line_passes_strings_through() -> None:
    assert command_line("echo $HOME") == "echo $HOME"
    assert command_line(["echo", "$HOME"]) == "echo '$HOME'"


def test_detached_quotes_log_and_cwd() -> None:
    line = detached(["run me", "x"], "/var/log/a b.log", cwd="/opt/$(x)")
    assert line.startswith("cd '/opt/$(x)' && setsid nohup 'run me' x >>'/var/log/a b.log'")
    assert line.endswith("& echo $!")


def test_marked_parts_split_in_a_real_shell_even_with_ps_in_the_output() -> None:
    """A composite command's parts come back apart; the marker inside ps's line of the
    running shell is not taken for a marker; names with odd characters survive quoting."""
    odd = "east s1;$(id)"
    command = "; ".join(
        [
            "ps -ww -eo pid=,args=",
            echo_mark(f"kit {odd}"),
            "printf 'a\\n\\n  b  \\n'",
            echo_mark("empty"),
            echo_mark("last"),
            "echo z",
        ]
    )
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    parts = split_marked(out)
    assert set(parts) == {"", f"kit {odd}", "empty", "last"}
    assert parts[f"kit {odd}"] == ["a", "b"]
    assert parts["empty"] == []
    assert parts["last"] == ["z"]
    assert any(echo_mark("empty") in line for line in parts[""])  # ps's line of the shell


@given(st.text(min_size=1).filter(lambda s: "\x00" not in s), st.floats(0.0, 1e7))
def test_timed_runs_the_line_under_timeout_and_untimed_reads_it_back(
    line: str, seconds: float
) -> None:
    """What a host's journal or ``ps`` shows of a timed command reads back as the line."""
    command = timed(line, seconds)
    words = shlex.split(command)
    assert words[:2] == ["timeout", "-k"] and words[4:6] == ["sh", "-c"] and words[6] == line
    assert float(words[3]) >= 0.1  # never 0, which would mean no limit
    assert "e" not in words[3]  # plain decimal: timeout reads no exponent
    assert untimed(command) == line
    assert untimed(line) == line or line.startswith("timeout -k ")


def test_timed_line_runs_in_a_real_shell() -> None:
    line = "printf '%s|' \"$0\" 'it'\"'\"'s'; exit 3"
    done = subprocess.run(["sh", "-c", timed(line, 5)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (3, "sh|it's|")
