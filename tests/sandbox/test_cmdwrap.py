"""The compiled command wrapper (cmdwrap.c) writes the journal lines the Python one
(cmdwrap.py, the reference) writes, exits as it does, and hands dirty-backup deletions back to
it: run side by side on the same scenario, outside sshd (it reads ``SSH_ORIGINAL_COMMAND``
like sshd passes it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.sandbox import wrapper

KIT = "opt/terracotta/bigmemory-max-4.2.1"
BACKUP = "var/terracotta/east-s1-a/data/dirty-objectdb-backup/dirty-objectdb-2026010112000000"

COMMANDS: list[bytes] = [
    b"true",
    b"printf '%s\\n' \"quote\\\" back\\\\slash\" 'tab\there' '\xc3\xa9 \xe2\x9c\x93'\n"
    b"# second line\x01\x1f",
    b"echo not utf-8: \xff\xfe \xed\xa0\x80 \xc0\xaf; exit 3",
    b"kill -TERM $$",
    b"env | grep -c SSH_ORIGINAL_COMMAND; exit 0",
    # A kit unpacked (journaled with its version), one already there (not journaled again).
    f"mkdir -p {KIT}/server/lib && printf 'a=1\\n version = 4.2.1 \\n' "
    f"> {KIT}/server/lib/tc-version.properties".encode(),
    # A dirty backup deleted: journaled with the server whose data it was.
    f"rm -rf {BACKUP}".encode(),
]


def _scenario(base: Path) -> Path:
    """A sandbox-like folder: sandbox.json naming the host's servers, a host root with an
    existing kit and a dirty backup; returns the host root (the scan root)."""
    root = base / "hosts" / "127.9.9.1"
    (root / "opt/terracotta/bigmemory-max/server/lib").mkdir(parents=True)
    (root / "opt/terracotta/bigmemory-max/server/lib/tc-version.properties").write_text(
        "version=4.2.0\n"
    )
    (root / BACKUP).mkdir(parents=True)
    (base / "sandbox.json").write_text(
        json.dumps(
            {"servers": {"east-s1-b": {"host": "127.9.9.1"}, "east-s1-a": {"host": "127.9.9.1"}}}
        )
    )
    return root


def _run_all(
    wrapper: list[str], base: Path
) -> tuple[list[tuple[int, bytes]], list[dict[str, Any]]]:
    root = _scenario(base)
    journal = base / "journal.jsonl"
    outcomes = []
    for command in COMMANDS:
        env = {**os.environ, "PATH": "/usr/bin:/bin"}
        env_b = {k.encode(): v.encode() for k, v in env.items()}
        env_b[b"SSH_ORIGINAL_COMMAND"] = command
        done = subprocess.run(
            [*wrapper, "--host", "127.9.9.1", "--journal", str(journal), "--scan-root", str(root)],
            env=env_b,
            cwd=root,
            capture_output=True,
            check=False,
        )
        outcomes.append((done.returncode, done.stdout.replace(str(base).encode(), b"BASE")))
    lines = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        event = json.loads(line.replace(json.dumps(str(base))[1:-1], "BASE"))
        assert isinstance(event.pop("t"), float)
        lines.append(event)
    return outcomes, lines


@pytest.fixture(scope="module")
def wrappers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    if wrapper.c_compiler() is None:
        pytest.skip("no C compiler here: sandboxes use the Python wrapper")
    folder = tmp_path_factory.mktemp("wrappers")
    binary = wrapper.install_wrapper(folder)
    assert binary.name == "cmdwrap", "a C compiler is there, yet the wrapper was not built"
    python = wrapper.wrapper_python()
    return {
        "python": [python, "-S", "-I", str(folder / "cmdwrap.pyc")],
        "c": [str(binary), "--python", python, "--pyc", str(folder / "cmdwrap.pyc")],
    }


def test_compiled_and_python_wrappers_journal_and_exit_alike(
    wrappers: dict[str, list[str]], tmp_path: Path
) -> None:
    py_out, py_lines = _run_all(wrappers["python"], tmp_path / "py")
    c_out, c_lines = _run_all(wrappers["c"], tmp_path / "c")
    assert c_out == py_out
    assert c_lines == py_lines
    # What the reference wrapper writes, checked once by hand.
    assert [code for code, _ in py_out] == [0, 0, 3, 143, 0, 0, 0]
    assert py_out[4][1] == b"0\n"  # the command does not see SSH_ORIGINAL_COMMAND
    commands = [e["command"] for e in py_lines if e["event"] == "command"]
    assert commands[1] == COMMANDS[1].decode()
    assert commands[2] == COMMANDS[2].decode("utf-8", "surrogateescape")
    assert [e for e in py_lines if e["event"] != "command"] == [
        {
            "event": "kit_unpacked",
            "host": "127.9.9.1",
            "path": f"BASE/hosts/127.9.9.1/{KIT}",
            "version": "4.2.1",
        },
        {
            "event": "dirty_backup",
            "server": "east-s1-a",
            "path": f"BASE/hosts/127.9.9.1/{BACKUP}",
            "action": "deleted",
        },
    ]


def test_without_a_command_both_give_a_login_shell(wrappers: dict[str, list[str]]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SSH_ORIGINAL_COMMAND"}
    env["SHELL"] = "/bin/sh"
    outputs = {
        name: subprocess.run(
            [*argv, "--host", "h"],
            env=env,
            input='echo "$0"\n',
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for name, argv in wrappers.items()
    }
    assert outputs["c"] == outputs["python"] == "-sh\n"


def test_without_a_compiler_the_python_wrapper_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    installed = wrapper.install_wrapper(tmp_path)
    assert installed.suffix in (".pyc", ".py")
    line = wrapper.force_command(installed, host="127.9.9.1", scan_root=tmp_path, journal=None)
    assert line.split()[1:4] == ["-S", "-I", str(installed)]
