"""The tc-config parser and preflight's comparison of it with the inventory: every
disagreement names the file, the host, the server and the element."""

from __future__ import annotations

import re

import pytest

from bm_upgrade.inventory import Inventory
from bm_upgrade.probes.tcconfig import TcConfigError, parse_tc_config, resolved_path
from bm_upgrade.procedure.tcconfig_check import judge, read_command, split_files
from bm_upgrade.remote.quoting import MARK
from tests.unit import inventories

PATH = "/etc/terracotta/tc-config.xml"


def tc_config(
    *,
    restartable: bool = True,
    a1: str = "",
    a2_name: str = "tsa-a2",
    extra_server: str = "",
) -> str:
    restart = f'<restartable enabled="{str(restartable).lower()}"/>'
    return f"""<?xml version="1.0"?>
<tc:tc-config xmlns:tc="http://www.terracotta.org/config">
  <servers>
    <mirror-group group-name="stripe1" election-time="5">
      <server host="10.0.0.1" name="tsa-a1">
        <data>/var/lib/terracotta/tsa-a1/data</data>
        <data-backup>/var/backups/tsa-a1</data-backup>
        {a1 or "<tsa-port>9510</tsa-port>"}
      </server>
      <server host="10.0.0.2" name="{a2_name}">
        <data>/var/lib/terracotta/tsa-a2/data</data>
        <tsa-port>9510</tsa-port><management-port>9540</management-port>
      </server>
      {extra_server}
    </mirror-group>
    {restart}
  </servers>
</tc:tc-config>
"""


def inventory(**overrides: object) -> Inventory:
    return Inventory.model_validate(inventories.minimal(**overrides))


def reading_of(
    text: str, inv: Inventory | None = None
) -> tuple[list[str], list[str], dict[str, bool]]:
    inv = inv or inventory()
    texts: dict[tuple[str, str], str | None] = {
        (s.host, s.tc_config): text for _, _, s in inv.servers()
    }
    reading = judge(inv, texts)
    return reading.problems, reading.warnings, reading.persistent


def test_parse_reads_persistence_folders_ports_and_groups() -> None:
    config = parse_tc_config(tc_config())
    assert config.restartable is True
    a1 = config.servers["tsa-a1"]
    assert (a1.host, a1.group, a1.tsa_port) == ("10.0.0.1", "stripe1", 9510)
    assert a1.management_port == 9540  # tsa-port + 30 when unset
    assert a1.data == "/var/lib/terracotta/tsa-a1/data"
    assert a1.data_backup == "/var/backups/tsa-a1"
    assert config.stripe_of("tsa-a2") == ["tsa-a1", "tsa-a2"]


def test_parse_plain_servers_and_defaults() -> None:
    text = (
        '<tc-config xmlns="http://www.terracotta.org/config"><servers>'
        '<server host="h" name="s1"><tsa-port>9610</tsa-port></server></servers></tc-config>'
    )
    config = parse_tc_config(text)
    assert config.restartable is False
    s1 = config.servers["s1"]
    assert (s1.group, s1.tsa_port, s1.management_port, s1.data) == ("", 9610, 9640, None)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('<!DOCTYPE x [<!ENTITY a "b">]><tc-config/>', "DOCTYPE or ENTITY"),
        ("<tc-config><servers>", "not well-formed"),
        ("<other/>", "not <tc-config>"),
        ("<tc-config/>", "no <servers>"),
        (
            "<tc-config><servers><server name='a'/><mirror-group/></servers></tc-config>",
            "both <server> and <mirror-group>",
        ),
        (
            "<tc-config><servers><server name='a'><tsa-port>x</tsa-port></server>"
            "</servers></tc-config>",
            "<tsa-port> of server a is 'x'",
        ),
        ("<tc-config>" + " " * (1024 * 1024) + "</tc-config>", "larger than"),
    ],
)
def test_parse_refuses(text: str, why: str) -> None:
    with pytest.raises(TcConfigError, match=re.escape(why)):
        parse_tc_config(text)


def test_resolved_path() -> None:
    assert resolved_path("data", "/etc/tc/tc-config.xml") == "/etc/tc/data"
    assert resolved_path("/d/../e", "/etc/tc/tc-config.xml") == "/e"
    assert resolved_path("%(user.home)/data", "/etc/tc/tc-config.xml") is None


def test_a_tc_config_that_agrees_passes_and_gives_the_persistence_read() -> None:
    problems, warnings, persistent = reading_of(tc_config())
    assert problems == []
    assert warnings == []
    assert persistent == {"east/stripe1": True}


def test_restartable_disagreeing_is_named_with_file_host_and_element() -> None:
    problems, _, persistent = reading_of(tc_config(restartable=False))
    assert persistent == {"east/stripe1": False}
    assert len(problems) == 2
    assert problems[0] == (
        f'{PATH} on 10.0.0.1: <restartable enabled="false"> but the inventory says '
        "persistent: true for region east; correct the inventory's persistent"
    )


def test_ports_and_data_disagreeing_are_named() -> None:
    text = tc_config(
        a1="<tsa-port>9511</tsa-port><management-port>9000</management-port><data>/elsewhere</data>"
    ).replace("<data>/var/lib/terracotta/tsa-a1/data</data>", "")
    problems, _, _ = reading_of(text)
    assert problems == [
        f"{PATH} on 10.0.0.1: <tsa-port> of server tsa-a1 is 9511 but the inventory's "
        "tsa_port is 9510; correct the inventory",
        f"{PATH} on 10.0.0.1: <management-port> of server tsa-a1 is 9000 but the "
        "inventory's management_port is 9540; correct the inventory",
        f"{PATH} on 10.0.0.1: <data> of server tsa-a1 is /elsewhere but the inventory's "
        "data_dir is /var/lib/terracotta/tsa-a1/data; correct the inventory",
    ]


def test_a_server_missing_and_a_stripe_that_differs_are_named() -> None:
    problems, _, _ = reading_of(tc_config(a2_name="tsa-b2"))
    assert problems[0] == (
        f"{PATH} on 10.0.0.1: server tsa-a1's stripe holds tsa-a1, tsa-b2 but the "
        "inventory's stripe east/stripe1 holds tsa-a1, tsa-a2; make the inventory's "
        "stripes the tc-config's mirror groups"
    )
    assert problems[1].startswith(f'{PATH} on 10.0.0.2 has no <server name="tsa-a2">')


def test_unreadable_and_unparsable_files_are_named() -> None:
    inv = inventory()
    reading = judge(inv, {("10.0.0.1", PATH): None, ("10.0.0.2", PATH): "<x"})
    assert reading.problems[0].startswith(
        f"{PATH} on 10.0.0.1 (tc_config of server tsa-a1): it cannot be read"
    )
    assert "not well-formed XML" in reading.problems[1]
    assert reading.persistent == {}


def test_data_left_to_substitution_is_a_warning() -> None:
    text = tc_config().replace(
        "<data>/var/lib/terracotta/tsa-a1/data</data>", "<data>%(user.home)/d</data>"
    )
    problems, warnings, _ = reading_of(text)
    assert problems == []
    assert warnings == [
        f"{PATH} on 10.0.0.1: <data> of server tsa-a1 is '%(user.home)/d', which only the "
        "server expands; its data_dir /var/lib/terracotta/tsa-a1/data is taken on trust"
    ]


def test_read_command_output_is_split_per_file() -> None:
    command = read_command(["/a b", "/c"])
    assert "'/a b'" in command and "head -c 1048577 -- /c" in command
    output = f"{MARK}file 0\n<x>\n  <y/>\n</x>\n\n{MARK}unreadable 1\n"
    assert split_files(output, 2) == ["<x>\n  <y/>\n</x>\n\n", None]
