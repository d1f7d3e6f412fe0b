"""An upgrade whose every remote path holds spaces, both quotes, ``$()``, backticks, ``;``
and ``&&`` (the topology's ``nodes_folder``): it goes through, the hosts' journal shows each
path reaching the host as one literal argument and each client command exactly as the
inventory writes it, and no substitution was ever run (the files it would create do not
exist). Node names cannot hold such characters (the inventory refuses them).

Not covered: non-ASCII letters in paths. ``ps`` in an SSH session without a UTF-8 locale
prints them as ``?``, so the tool's process checks (procedure/seen.py, probes/orchestrator.py,
procedure/kit_users.py) do not find such a node's process."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bm_upgrade.defs.launch import run_upgrade
from tests.e2e.conftest import E2ESandbox, e2e_sandbox
from tests.e2e.journal_check import violations

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dagster_home")]
TOPOLOGY = Path(__file__).parent / "topologies" / "injection.yaml"
MARKERS = ("bm-inj-dollar", "bm-inj-tick")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[E2ESandbox]:
    with e2e_sandbox(str(TOPOLOGY)) as sb:
        yield sb


def words_of(command: str) -> Iterator[list[str]]:
    """The words of ``command`` as its shell splits them, then those of every script it
    hands to ``sh -c`` or ``bash -c``, recursively."""
    try:
        words = shlex.split(command)
    except ValueError:  # a script of the tool's own (here-documents, awk): no words to check
        return
    yield words
    for index, word in enumerate(words[1:-1], start=1):
        if word == "-c" and words[index - 1] in ("sh", "bash"):
            yield from words_of(words[index + 1])


def test_paths_and_commands_with_shell_syntax_reach_the_hosts_intact(
    sandbox: E2ESandbox,
) -> None:
    inventory = sandbox.inventory
    folder = 'it\'s "q" $(touch bm-inj-dollar) `touch bm-inj-tick`; && x'
    assert all(
        folder in node.install_dir for node in inventory.nodes() if hasattr(node, "install_dir")
    )
    since = time.time()
    outcome = run_upgrade(sandbox.inventory_path)
    assert outcome.success, outcome.failure
    assert outcome.report and "Every node runs 4.2.1." in outcome.report
    until = time.time()
    assert violations(sandbox.journal_path, inventory, "4.2.1", since=since, until=until) == []
    assert sandbox.verify()["lost"] == 0

    # Nothing in a path was ever run: the files a substitution would create do not exist.
    # (A substitution runs in its shell's folder: the sandbox's, the login's home, or here.)
    for root, dirs, files in os.walk(sandbox.directory.parent):
        assert not set(MARKERS) & (set(files) | set(dirs)), root
    for place in (Path.cwd(), Path.home(), Path("/var/lib/bmsandbox"), Path("/")):
        assert not any((place / marker).exists() for marker in MARKERS), place

    # Each host was asked to work on the paths exactly as the inventory writes them.
    commands: dict[str, list[list[str]]] = {}
    for event in sandbox.journal(since):
        if event["event"] == "command":
            commands.setdefault(event["host"], []).extend(words_of(event["command"]))
    assert commands
    for node in inventory.nodes():
        words = {word for line in commands[node.host] for word in line}
        paths = [getattr(node, field, None) for field in ("install_dir", "tc_config", "wan_xml")]
        paths += [getattr(node, "lib_dir", None)]
        for path in filter(None, paths):
            assert any(word == path or word.startswith(path + "/") for word in words), (
                node.name,
                path,
            )
    # A client's own commands are run as written: the innermost script is the command itself.
    for _, client in inventory.clients():
        scripts = {line[-1] for line in commands[client.host] if line[-2:-1] == ["-c"]}
        assert client.stop_command in scripts and client.start_command in scripts
        assert "'" in client.start_command and folder.replace("'", "'\"'\"'") in (
            client.start_command
        )
