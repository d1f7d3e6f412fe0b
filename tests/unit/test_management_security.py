"""Secured management ports (docs/terracotta.md, "Secured clusters"): the inventory's
``management_security`` (never an inline password, one password source, certificates checked
by default), its resolution at use time, the scripts' connection options, and
``server-stat.sh``'s blocks for an unreachable server and a refused login."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.errors import InventoryError, SecretUnavailable
from bm_upgrade.inventory import parse_inventory
from bm_upgrade.inventory.scripts import management_args, script_argv, script_input
from bm_upgrade.inventory.security import ManagementSecurity
from bm_upgrade.probes import server_status_from_stat
from bm_upgrade.remote.quoting import STDIN_VALUE, WithInput, fed, shell
from tests.unit.inventories import minimal

FIXTURES = Path(__file__).parent.parent / "fixtures"


def inventory(security: dict[str, Any] | None = None, **region: Any) -> Any:
    data = minimal()
    if security is not None:
        data["management_security"] = security
    data["regions"][0].update(region)
    return parse_inventory(data, "inv.yaml")


def test_an_inline_password_is_refused_naming_the_field() -> None:
    with pytest.raises(InventoryError) as err:
        inventory({"user": "admin", "password": "s3cret-value"})
    text = str(err.value)
    assert "management_security" in text
    assert "never written in the inventory" in text
    assert "password_file" in text and "password_env" in text
    assert "s3cret-value" not in text


@pytest.mark.parametrize(
    "sources",
    [{}, {"password_env": "TC_PW", "password_file": "/etc/tc/pw"}],
)
def test_exactly_one_password_source(sources: dict[str, str]) -> None:
    with pytest.raises(InventoryError) as err:
        inventory({"user": "admin", **sources})
    assert "exactly one of password_env and password_file" in str(err.value)


def test_certificates_are_checked_by_default() -> None:
    security = ManagementSecurity(user="admin", password_env="TC_PW")
    assert security.verify is True
    assert security.ca_file is None


def test_password_from_the_environment_read_at_use(monkeypatch: pytest.MonkeyPatch) -> None:
    security = ManagementSecurity(user="admin", password_env="BM_TEST_TC_PW")
    monkeypatch.delenv("BM_TEST_TC_PW", raising=False)
    with pytest.raises(SecretUnavailable) as err:
        security.password()
    assert "BM_TEST_TC_PW is not set" in str(err.value)
    monkeypatch.setenv("BM_TEST_TC_PW", "from-env")
    assert security.password() == "from-env"
    assert security.source() == "environment variable BM_TEST_TC_PW"


def test_password_from_a_file_first_line(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    security = ManagementSecurity(user="admin", password_file=str(path))
    with pytest.raises(SecretUnavailable) as err:
        security.password()
    assert f"cannot read {path}" in str(err.value)
    path.write_text("", encoding="utf-8")
    with pytest.raises(SecretUnavailable, match="is empty"):
        security.password()
    path.write_text("from-file\nsecond line\n", encoding="utf-8")
    assert security.password() == "from-file"


def test_a_region_overrides_the_cluster_default_and_its_servers_know_it() -> None:
    inv = inventory(
        {"user": "cluster-admin", "password_env": "TC_PW"},
        management_security={"user": "east-admin", "password_file": "/etc/tc/pw", "verify": False},
    )
    (_, _, srv), *_ = list(inv.servers())
    assert srv.management_security is not None
    assert srv.management_security.user == "east-admin"
    assert inv.unverified_regions() == [inv.regions[0].name]
    plain = parse_inventory(minimal(), "inv.yaml")
    assert all(s.management_security is None for _, _, s in plain.servers())
    assert plain.unverified_regions() == []


def test_connection_options_only_for_the_management_scripts(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("p4ss word\n", encoding="utf-8")
    inv = inventory({"user": "admin", "password_file": str(secret)})
    (_, _, srv), *_ = list(inv.servers())
    assert management_args(srv, "server-stat.sh") == ["-u", "admin", "-w", STDIN_VALUE, "--secured"]
    assert management_args(srv, "version.sh") == []
    assert management_args(srv, "start-tc-server.sh") == []
    line = shell(script_argv(srv, "stop-tc-server.sh", "-f", srv.tc_config, "-n", srv.name))
    # The password is no part of the command line: -w takes the command's standard input.
    assert line.endswith(' -u admin -w "$(cat)" --secured')
    assert "p4ss" not in line
    assert script_input(srv, "stop-tc-server.sh") == "p4ss word\n"
    assert script_input(srv, "version.sh") is None
    command = fed(line, script_input(srv, "stop-tc-server.sh"))
    assert isinstance(command, WithInput) and command.stdin == "p4ss word\n"
    assert "p4ss" not in repr(command) and "p4ss" not in str(command)
    unchecked = inventory({"user": "admin", "password_file": str(secret), "verify": False})
    (_, _, srv2), *_ = list(unchecked.servers())
    assert management_args(srv2, "server-stat.sh")[-1] == "-k"


def test_server_stat_unreachable_block_is_unreachable_with_its_error() -> None:
    inv = parse_inventory(minimal(), "inv.yaml")
    (_, _, srv), *_ = list(inv.servers())
    text = (FIXTURES / "server-stat-unreachable.txt").read_text().replace("10.0.0.12", srv.host)
    status = server_status_from_stat(srv, text.replace(":9540", f":{srv.management_port}"), "4.2.1")
    assert (status.reachable, status.state, status.role, status.version) == (
        False,
        "unknown",
        "unknown",
        None,
    )
    assert status.error is not None
    assert f"server {srv.name} ({srv.host}) did not answer" in status.error
    assert "Is the TSA running?" in status.error


def test_server_stat_401_names_the_server_and_the_password_source() -> None:
    inv = inventory({"user": "admin", "password_env": "TC_PW"})
    (_, _, srv), *_ = list(inv.servers())
    text = (FIXTURES / "server-stat-401.txt").read_text().replace("10.0.0.12", srv.host)
    status = server_status_from_stat(srv, text, None)
    assert not status.reachable
    assert status.error is not None
    assert f"server {srv.name}" in status.error
    assert "refused the login of user admin" in status.error
    assert "environment variable TC_PW" in status.error
    assert "Authentication error, check username/password and try again." in status.error
    # Without management_security the message says to add it.
    plain = parse_inventory(minimal(), "inv.yaml")
    (_, _, bare), *_ = list(plain.servers())
    text = (FIXTURES / "server-stat-401.txt").read_text().replace("10.0.0.12", bare.host)
    message = server_status_from_stat(bare, text, None).error or ""
    assert "asks for a login" in message and "management_security" in message
