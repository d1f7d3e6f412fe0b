"""Bad command lines at scale (hypothesis): generated arguments for every `bm-upgrade`
command end in exit 0, in exit 2 with one line on stderr (the inventory's problem block for
a broken inventory), or, for the commands that look at hosts or a sandbox, in exit 1 saying
what failed; never in a traceback.

Nothing is contacted for real: inventories name hosts nobody answers for (a closed loopback
port), DAGSTER_HOME is unset (so `run` and `rerun` stop before a run exists), sandbox folders
do not exist or are empty, and `demo` and `sandbox up` always get an option they do not know
(so they stop at argument parsing)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.bad_input import Ran, assert_refused_in_one_message, bm
from tests.unit.inventories import unanswered

REPO = Path(__file__).resolve().parents[2]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
UNKNOWN = "--no-such-option"
SWITCHES = [
    "--json",
    "--dry-run",
    "--allow-downtime",
    "--accept-data-loss",
    "--inventory-changed",
    "--yes",
    "--keep",
    "--clear",
    "--list",
    UNKNOWN,
    "-x",
    "--",
    "-",
]
VALUED = ["--to", "--dir", "--topology", "--timeout", "--seconds"]
WORDS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@pytest.fixture(scope="module")
def files() -> Iterator[dict[str, str]]:
    """Inventories and folders the generated arguments name."""
    with tempfile.TemporaryDirectory(prefix="bm-upgrade-argv-") as name:
        folder = Path(name)
        broken = folder / "broken.yaml"
        broken.write_text("cluster: [unclosed\n", encoding="utf-8")
        empty = folder / "empty-dir"
        empty.mkdir()
        yield {
            "unanswered": str(unanswered(folder, "unanswered")),
            "broken": str(broken),
            "missing": str(folder / "missing.yaml"),
            "folder": str(empty),
            "example": str(REPO / "examples" / "inventory.yaml"),
        }


@pytest.fixture
def no_dagster_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


COMMANDS = [
    ["validate"],
    ["schema"],
    ["plan"],
    ["run"],
    ["rerun"],
    ["report"],
    ["demo"],
    ["sandbox"],
    ["sandbox", "up"],
    ["sandbox", "down"],
    ["sandbox", "verify"],
    ["sandbox", "fault"],
    ["sandbox", "nope"],
    ["nope"],
    [],
]
# Reaching hosts (status, trust-hosts) takes a second a call: fewer examples, below.
LOOKING = [["status"], ["trust-hosts"]]
# What ends in exit 1 when it cannot do its work (not the user's mistake).
MAY_FAIL = {"status", "trust-hosts", "sandbox"}


def argv_for(commands: list[list[str]], files: dict[str, str]) -> st.SearchStrategy[list[str]]:
    paths = [files[key] for key in ("unanswered", "broken", "missing", "folder")]
    example = files["example"]

    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        command = list(draw(st.sampled_from(commands)))
        inventories = paths if command[:1] in (["status"], ["trust-hosts"]) else [*paths, example]
        token = st.one_of(
            st.sampled_from(SWITCHES),
            st.sampled_from(inventories),
            st.tuples(
                st.sampled_from(VALUED),
                st.sampled_from(["4.2.0", "4.2.9", "small", "x", "-1", "0.01", *paths]) | WORDS,
            ).map(list),
            WORDS,
            st.sampled_from(["kill", "no-sync", "host-down", "east-s1-a", "nan", "1e999"]),
        )
        rest: list[str] = []
        for part in draw(st.lists(token, max_size=5)):
            rest += part if isinstance(part, list) else [part]
        if command[:1] == ["demo"] or command[:2] == ["sandbox", "up"]:
            rest.append(UNKNOWN)  # never start a sandbox: stop at argument parsing
        return command + rest

    return build()


def check(ran: Ran, argv: list[str]) -> None:
    assert "Traceback" not in ran.out + ran.err, (argv, ran)
    if ran.code == 0:
        return
    if ran.code == 1:
        assert argv[0] in MAY_FAIL, (argv, ran)
        return
    lines = ran.err_lines
    named = [arg for arg in argv if len(lines) > 1 and lines[0].startswith(f"error: {arg}: ")]
    assert_refused_in_one_message(ran, named[0] if named else None)
    assert ran.out == "", (argv, ran)


@SETTINGS
@given(data=st.data())
@pytest.mark.usefixtures("no_dagster_home")
def test_any_command_line_ends_in_one_message(files: dict[str, str], data: st.DataObject) -> None:
    argv = data.draw(argv_for(COMMANDS, files))
    check(bm(argv), argv)


@settings(SETTINGS, max_examples=12)
@given(data=st.data())
@pytest.mark.usefixtures("no_dagster_home")
def test_commands_that_look_at_hosts_end_in_one_message(
    files: dict[str, str], data: st.DataObject
) -> None:
    argv = data.draw(argv_for(LOOKING, files))
    check(bm(argv), argv)


def test_a_file_name_that_is_not_utf8_is_named_without_a_traceback(tmp_path: Path) -> None:
    """A name the shell passes as bytes that are not UTF-8 reaches Python with surrogate
    escapes; printing it must not fail (run as a real process, whose stdout is strict)."""
    name = tmp_path.as_posix().encode() + b"/inv\xff.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "bm_upgrade.cli", "validate", name],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert b"Traceback" not in result.stderr
    assert result.stderr.count(b"\n") == 1 and b"no such file" in result.stderr
