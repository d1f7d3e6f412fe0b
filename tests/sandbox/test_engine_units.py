"""The sandbox engine's pieces without processes: journal, license, tc-config, kits."""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from bm_upgrade import license as tool_license
from bm_upgrade.sandbox import journal, kits, license, tcconfig
from bm_upgrade.sandbox.kit_files.server.lib import tccommon, tcconfigxml, tckey

TODAY = datetime.date(2026, 1, 1)


def test_journal_lines_stay_whole_with_many_writers(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"

    def writer(n: int) -> None:
        for i in range(200):
            journal.append(path, "command", host=f"127.0.0.{n}", command="x" * 3000 + str(i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = journal.read(path)
    assert len(events) == 800
    assert all(e["event"] == "command" and isinstance(e["t"], float) for e in events)


def test_license_file_has_the_4x_layout_and_the_tool_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "terracotta-license.key"
    license.write_license(path, expiry=datetime.date(2027, 12, 31))
    lines = path.read_text().splitlines()
    assert lines[1] == "# Descriptor version: 3"
    assert lines[3:13] == [
        "Capabilities: ehcache, ehcache offheap, TMC, WAN",
        "Date of Issue: 2015-06-01",
        "Edition: FX",
        "Expiration Date: 2027-12-31",
        "License Number: 4200001",
        "License Type: Commercial",
        "Licensee: bm_upgrade sandbox",
        "Max Client Count: 100",
        "Product: BigMemory Max",
        "Version: 4.2",
    ]
    assert lines[13] == "" and lines[14].startswith("Signature: ")
    signature = lines[14].split(": ", 1)[1]
    assert len(signature) == 44 and signature.endswith("=")  # base64: the parsers stop there
    assert tckey.check_license(path, "4.2.1", TODAY) is None
    # The upgrade tool reads the same key: every field it looks for, nothing to warn about.
    fit = tool_license.license_fit(
        tool_license.load_license(path), "4.2.1", True, datetime.date(2027, 1, 1)
    )
    assert (fit.refusals, fit.warnings) == ([], [])
    assert fit.license.signed and fit.license.expires == datetime.date(2027, 12, 31)


def test_a_key_without_expiry_or_version_lets_a_server_start(tmp_path: Path) -> None:
    path = tmp_path / "terracotta-license.key"
    license.write_license(path, expiry=None, version=None)
    assert "Expiration Date" not in path.read_text()
    assert tckey.check_license(path, "4.2.1", datetime.date(2099, 1, 1)) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("missing", "License key not found"),
        ("expired", ": Your Terracotta license has expired on 2025-12-31"),
        ("product", ": it is for product 'Ehcache', not 'BigMemory Max'"),
        ("version", ": it is for version 4.3; it does not cover 4.2.1"),
        ("tampered", ": it has an invalid signature"),
    ],
)
def test_license_refusals(tmp_path: Path, change: str, expected: str) -> None:
    path = tmp_path / "terracotta-license.key"
    expiry = datetime.date(2025, 12, 31) if change == "expired" else datetime.date(2027, 1, 1)
    license.write_license(
        path,
        expiry=expiry,
        product="Ehcache" if change == "product" else "BigMemory Max",
        version="4.3" if change == "version" else "4.2",
    )
    if change == "missing":
        path.unlink()
    if change == "tampered":
        path.write_text(path.read_text().replace("Max Client Count: 100", "Max Client Count: 9999"))
    problem = tckey.check_license(path, "4.2.1", TODAY)
    assert problem is not None and expected in problem
    assert change == "missing" or problem.startswith(f"License key {path}: ")


def test_tc_config_round_trip_and_defaults(tmp_path: Path) -> None:
    server = {
        "name": "tsa-a1",
        "host": "127.0.0.2",
        "data": "/d/a1",
        "logs": "/l/a1",
        "tsa_port": 9510,
        "jmx_port": 9520,
        "group_port": 9530,
        "management_port": 9540,
    }
    path = tmp_path / "tc-config.xml"
    tcconfig.write_tc_config(
        path,
        stripes=[{"name": "stripe1", "servers": [server]}],
        persistent=True,
        reconnect_window_s=2.5,
        election_s=0.3,
    )
    text = path.read_text()
    assert text.startswith('<tc:tc-config xmlns:tc="http://www.terracotta.org/config">')
    assert '<mirror-group group-name="stripe1" election-time="0.3">' in text
    parsed = tcconfigxml.parse_tc_config(path.read_text(encoding="utf-8"))
    assert parsed["persistent"] is True and parsed["reconnect_window_s"] == 2.5
    stripe = parsed["stripes"][0]
    assert stripe["name"] == "stripe1" and stripe["election_s"] == 0.3
    assert {k: stripe["servers"][0][k] for k in server} == server

    plain = tcconfigxml.parse_tc_config(
        '<tc:tc-config xmlns:tc="http://www.terracotta.org/config"><servers>'
        '<server host="h1" name="s1"><tsa-port>9610</tsa-port></server>'
        '<server host="h2" name="s2"/></servers></tc:tc-config>'
    )
    s1, s2 = plain["stripes"][0]["servers"]
    assert (s1["jmx_port"], s1["group_port"], s1["management_port"]) == (9620, 9630, 9640)
    assert (s2["tsa_port"], s2["management_port"]) == (9510, 9540)
    assert plain["persistent"] is False and plain["reconnect_window_s"] == 120.0
    assert plain["stripes"][0]["election_s"] == 5.0


def test_tc_config_errors_say_what_is_wrong() -> None:
    with pytest.raises(tcconfigxml.ConfigError, match="both <server> and <mirror-group>"):
        tcconfigxml.parse_tc_config(
            '<tc-config><servers><server name="a"/>'
            '<mirror-group><server name="b"/></mirror-group>'
            "</servers></tc-config>"
        )
    with pytest.raises(tcconfigxml.ConfigError, match="not well-formed"):
        tcconfigxml.parse_tc_config("<tc-config>")


def test_kit_is_deterministic_and_laid_out(tmp_path: Path) -> None:
    first = kits.build_kit("4.2.1", tmp_path / "a")
    second = kits.build_kit("4.2.1", tmp_path / "b")
    assert first.name == "bigmemory-max-4.2.1.tar.gz"
    assert kits.sha256_of(first) == kits.sha256_of(second)
    assert kits.sha256_of(first) != kits.sha256_of(kits.build_kit("4.2.2", tmp_path / "c"))
    with tarfile.open(first) as tar:
        names = tar.getnames()
        assert {n.split("/")[0] for n in names} == {"bigmemory-max-4.2.1"}
        assert not any("license" in n.lower() for n in names)
        assert not any("__pycache__" in n for n in names)
        jar_member = "bigmemory-max-4.2.1/apis/toolkit/lib/terracotta-toolkit-runtime-ee-4.2.1.jar"
        jar = tar.extractfile(jar_member)
        assert jar is not None
        with zipfile.ZipFile(io.BytesIO(jar.read())) as archive:
            assert "Implementation-Version: 4.2.1" in archive.read("META-INF/MANIFEST.MF").decode()
            assert {"tcclient.py", "tccommon.py"} <= set(archive.namelist())
    root = tmp_path / "kit"
    kits.unpack_kit(first, root)
    assert (root / "server/lib/tc-version.properties").read_text().splitlines()[
        0
    ] == "version=4.2.1"
    assert (root / "apis/ehcache/lib/ehcache-ee-2.10.1.jar").is_file()
    for script in (
        "start-tc-server.sh",
        "stop-tc-server.sh",
        "server-stat.sh",
        "version.sh",
        "start-wan.sh",
        "stop-wan.sh",
    ):
        assert os.access(root / "server/bin" / script, os.X_OK)
    with pytest.raises(kits.KitError, match="not empty"):
        kits.unpack_kit(first, root)


def test_version_sh_prints_exactly_one_line(tmp_path: Path) -> None:
    root = tmp_path / "kit"
    kits.unpack_kit(kits.build_kit("4.2.1", tmp_path), root)
    out = subprocess.run(
        [str(root / "server/bin/version.sh")],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "JAVA_HOME": "/usr"},
    ).stdout
    assert out == (
        "Terracotta Enterprise 4.2.1, as of 20150516-055104 (Revision cc2fcfc2 from 4.2.x)\n"
    )


def test_sandbox_json_is_found_from_below(tmp_path: Path) -> None:
    (tmp_path / "sandbox.json").write_text(json.dumps({"dir": str(tmp_path)}))
    assert tccommon.find_sandbox(tmp_path / "hosts" / "127.0.0.1" / "etc") == {"dir": str(tmp_path)}
