"""The report names where each stripe's backup lies; the backup's name and folder."""

from __future__ import annotations

from bm_upgrade.probes.tcconfig import parse_tc_config
from bm_upgrade.procedure.backup import backup_folder, backup_name
from bm_upgrade.procedure.report import Report, render_report
from tests.unit.inventories import server_model


def test_the_report_lists_every_backup_taken() -> None:
    did = "backup bm-upgrade-ab12cd34 of stripe east/stripe1 taken on tsa-a1: h:/b/x"
    steps = [
        {"node": "tsa-a1", "action": "backup-data", "did": [did], "duration_s": 0.2},
        {"node": "tsa-a2", "action": "stop", "did": ["stopped"], "duration_s": 1.0},
    ]
    text = render_report(Report("c", "4.2.1", False, "r1", [], steps))
    assert f"## Backups\n\n- {did}\n" in text


def test_the_backup_name_and_folder() -> None:
    assert backup_name("ab12cd34") == "bm-upgrade-ab12cd34"
    assert backup_name("").startswith("bm-upgrade-20")
    server = server_model(name="s1", tc_config="/etc/tc/tc-config.xml")
    plain = parse_tc_config("<tc-config><servers><server name='s1'/></servers></tc-config>")
    assert backup_folder(server, plain) == "/etc/tc/data-backup"
    set_ = parse_tc_config(
        "<tc-config><servers><server name='s1'><data-backup>/b</data-backup></server>"
        "</servers></tc-config>"
    )
    assert backup_folder(server, set_) == "/b"
