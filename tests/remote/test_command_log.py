"""What a pool's connections ran, recorded for the evidence report (remote/commands.py), against
a real sshd: each command's line and exit status, a line run many times counted once, a
timeout kept without a status, a step's own commands read from its mark, a secret fed on
standard input in no recorded line, a URL's password taken out."""

from __future__ import annotations

import pytest

from bm_upgrade.errors import CommandTimeout
from bm_upgrade.remote import HostPool
from bm_upgrade.remote.commands import per_host
from bm_upgrade.remote.quoting import STDIN_VALUE, WithInput, shell
from tests.remote.conftest import Host


def test_a_pool_records_each_line_with_its_exit_status(host: Host) -> None:
    with HostPool(host.settings()) as pool:
        conn = pool.get(host.address)
        conn.run(["echo", "before the step"])
        mark = pool.commands.mark()
        for _ in range(3):
            conn.run(["true"])
        conn.run("exit 3", check=False)
        with pytest.raises(CommandTimeout):
            conn.run(["sleep", "5"], timeout=0.5)
        fed = conn.run(WithInput(shell(["sh", "-c", 'echo "$1"', "-", STDIN_VALUE]), "s3cret"))
        assert fed.stdout == "s3cret\n"
        conn.run(["echo", "https://user:hunter2@kits.example/kit.tar.gz?token=abc"])
        step = pool.commands.since(mark)
    lines = [run.line for run in step]
    assert lines[:5] == ["true", "true", "true", "exit 3", "sleep 5"]
    assert [run.exit_code for run in step[:6]] == [0, 0, 0, 3, None, 0]
    assert all("s3cret" not in line and "hunter2" not in line for line in lines)
    assert "token=abc" not in lines[-1] and "kits.example/kit.tar.gz" in lines[-1]
    table = per_host(step)
    assert list(table) == [host.address]
    first = table[host.address][0]
    assert (first["command"], first["count"], first["failed"]) == ("true", 3, 0)
    assert [(e["count"], e["failed"]) for e in table[host.address][1:3]] == [(1, 1), (1, 1)]
