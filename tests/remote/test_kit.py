"""Kit fetch over real HTTP (resume with Range, sha256) and file URLs; staging of kit and
license on real sshd hosts, once per host."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.errors import TransferFailed
from bm_upgrade.inventory import Inventory, Kit
from bm_upgrade.inventory.kitroot import STAGING_DIR_NAME
from bm_upgrade.procedure.kit import fetch_kit, kit_file_name, stage_kit, staging_targets
from bm_upgrade.remote import HostPool
from tests.remote.conftest import Host, serving

FIXTURES = Path(__file__).parent.parent / "fixtures"
KIT_BYTES = os.urandom(2 * 1024 * 1024 + 777)
KIT_SHA = hashlib.sha256(KIT_BYTES).hexdigest()


class KitServer(http.server.ThreadingHTTPServer):
    """Serves KIT_BYTES at any path; honours Range unless ``ranges`` is off."""

    ranges = True
    requests: list[dict[str, str]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: KitServer

    def do_GET(self) -> None:
        self.server.requests.append(dict(self.headers.items()))
        if self.path.endswith("missing.tar.gz"):
            self.send_error(404)
            return
        start = 0
        header = self.headers.get("Range")
        if header and self.server.ranges:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(KIT_BYTES):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header(
                "Content-Range", f"bytes {start}-{len(KIT_BYTES) - 1}/{len(KIT_BYTES)}"
            )
        else:
            self.send_response(200)
        body = KIT_BYTES[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def kit_server() -> Iterator[KitServer]:
    server = KitServer(("127.0.0.1", 0), _Handler)
    server.requests = []
    with serving(server):
        yield server


@pytest.fixture
def server(kit_server: KitServer) -> KitServer:
    kit_server.requests.clear()
    kit_server.ranges = True
    return kit_server


def kit(server: KitServer, name: str = "bigmemory-max-4.2.1.tar.gz", sha: str = KIT_SHA) -> Kit:
    return Kit(
        version="4.2.1", url=f"http://127.0.0.1:{server.server_port}/kits/{name}", sha256=sha
    )


def test_fetch_then_cached(
    server: KitServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bm_upgrade.procedure.kit")
    path = fetch_kit(kit(server), tmp_path)
    assert path == tmp_path / "bigmemory-max-4.2.1.tar.gz"
    assert path.read_bytes() == KIT_BYTES
    assert "fetching bigmemory-max-4.2.1.tar.gz: 50%" in caplog.text
    assert fetch_kit(kit(server), tmp_path) == path
    assert len(server.requests) == 1


def test_resume_partial_download(server: KitServer, tmp_path: Path) -> None:
    (tmp_path / "bigmemory-max-4.2.1.tar.gz.part").write_bytes(KIT_BYTES[:500_000])
    path = fetch_kit(kit(server), tmp_path)
    assert path.read_bytes() == KIT_BYTES
    assert server.requests[0]["Range"] == "bytes=500000-"


def test_server_without_ranges_restarts(server: KitServer, tmp_path: Path) -> None:
    server.ranges = False
    (tmp_path / "bigmemory-max-4.2.1.tar.gz.part").write_bytes(b"garbage")
    assert fetch_kit(kit(server), tmp_path).read_bytes() == KIT_BYTES


def test_sha_mismatch_removes_the_file(server: KitServer, tmp_path: Path) -> None:
    with pytest.raises(TransferFailed, match=r"kits\[\]\.sha256") as info:
        fetch_kit(kit(server, sha="ab" * 32), tmp_path)
    assert KIT_SHA in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_names_the_url(server: KitServer, tmp_path: Path) -> None:
    bad = kit(server, name="missing.tar.gz")
    with pytest.raises(TransferFailed, match=r"missing\.tar\.gz.*kits\[\]\.url"):
        fetch_kit(bad, tmp_path)


def test_file_url(tmp_path: Path) -> None:
    source = tmp_path / "src dir" / "bigmemory-max-4.2.1.tar.gz"
    source.parent.mkdir()
    source.write_bytes(KIT_BYTES)
    local = Kit(version="4.2.1", url=source.as_uri(), sha256=KIT_SHA)
    assert kit_file_name(local) == "bigmemory-max-4.2.1.tar.gz"
    assert fetch_kit(local, tmp_path / "cache").read_bytes() == KIT_BYTES
    gone = Kit(version="4.2.1", url=(tmp_path / "nope.tar.gz").as_uri(), sha256=KIT_SHA)
    with pytest.raises(TransferFailed, match=r"nope\.tar\.gz"):
        fetch_kit(gone, tmp_path / "cache2")


def inventory_for(host: Host, second: Host) -> Inventory:
    def server(name: str, addr: str, folder: Path) -> dict[str, Any]:
        return {
            "name": name,
            "host": addr,
            "install_dir": str(folder / "bigmemory-max"),
            "tc_config": str(folder / "tc-config.xml"),
            "data_dir": str(folder / name),
            "tsa_port": 9510 if name.endswith("a") else 9610,
            "management_port": 9540 if name.endswith("a") else 9640,
        }

    return Inventory.model_validate(
        {
            "cluster": "staging_test",
            "target_version": "4.2.1",
            "kits": [
                {
                    "version": "4.2.1",
                    "url": "file:///kits/bigmemory-max-4.2.1.tar.gz",
                    "sha256": KIT_SHA,
                }
            ],
            "license_file": str(FIXTURES / "license-4.2.key"),
            "ssh": host.settings().model_dump(),
            "persistent": True,
            "regions": [
                {
                    "name": "r1",
                    "stripes": [
                        {
                            "name": "s1",
                            "servers": [
                                server("tsa-1a", host.address, host.work / "stage a"),
                                server("tsa-1b", host.address, host.work / "stage b"),
                            ],
                        }
                    ],
                    "clients": [
                        {
                            "name": "app",
                            "host": second.address,
                            "lib_dir": str(second.work / "app" / "lib"),
                            "stop_command": "true",
                            "start_command": "true",
                        }
                    ],
                }
            ],
        }
    )


def test_staging_targets_one_per_host(host: Host, second_host: Host) -> None:
    inv = inventory_for(host, second_host)
    assert staging_targets(inv) == {
        host.address: str(host.work / "stage a" / STAGING_DIR_NAME),
        second_host.address: str(second_host.work / "app" / STAGING_DIR_NAME),
    }


def test_stage_kit_and_license_once_per_host(host: Host, second_host: Host, tmp_path: Path) -> None:
    inv = inventory_for(host, second_host)
    local = tmp_path / "bigmemory-max-4.2.1.tar.gz"
    local.write_bytes(KIT_BYTES)
    kit_model = inv.kits[0]
    with HostPool(inv.ssh) as pool:
        staged = stage_kit(pool, inv, kit_model, local, Path(inv.license_file))
        again = stage_kit(pool, inv, kit_model, local, Path(inv.license_file))
    assert set(staged) == {host.address, second_host.address}
    for st in staged.values():
        assert st.kit_action == "uploaded"
        assert Path(st.kit_path).read_bytes() == KIT_BYTES
        assert Path(st.license_path).name == "terracotta-license.key"
        assert Path(st.license_path).read_text() == (FIXTURES / "license-4.2.key").read_text()
    assert {st.kit_action for st in again.values()} == {"skipped"}
    assert not (host.work / "stage b" / STAGING_DIR_NAME).exists()
