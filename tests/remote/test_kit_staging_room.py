"""Kit URLs with secrets (user:token@, a signed query) through real HTTP fetches; staging on
real sshd hosts: disk room checked once the kit's size is known, private staging folders, and
their removal after a successful run."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import logging
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bm_upgrade.errors import StepFailed, TransferFailed
from bm_upgrade.inventory import Kit, KitRoot
from bm_upgrade.inventory.kitroot import STAGING_DIR_NAME
from bm_upgrade.plan import PlanOptions
from bm_upgrade.procedure.kit import clean_staging, fetch_kit, stage_kit
from bm_upgrade.procedure.room import (
    Free,
    Need,
    check_unpack_room,
    kits_needed,
    shortages,
    unpacked_size,
)
from bm_upgrade.remote import HostPool
from tests.remote.conftest import Host, serving
from tests.remote.test_kit import KIT_BYTES as STAGED_BYTES
from tests.remote.test_kit import inventory_for

USER, TOKEN, SIG = "deploy", "t0ken-S3CRET", "sig-Q5ECRET"
KIT_BYTES = os.urandom(300_000)
KIT_SHA = hashlib.sha256(KIT_BYTES).hexdigest()
SECRETS = (TOKEN, SIG)


class AuthServer(http.server.ThreadingHTTPServer):
    """Serves KIT_BYTES only with basic auth ``USER:TOKEN``; 404 for ``missing`` paths."""

    seen: list[dict[str, str]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: AuthServer

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, **dict(self.headers.items())})
        wanted = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != wanted:
            self.send_error(401)
            return
        if "missing" in self.path:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(KIT_BYTES)))
        self.end_headers()
        self.wfile.write(KIT_BYTES)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer(("127.0.0.1", 0), _Handler)
    server.seen = []
    with serving(server):
        yield server


def secret_kit(port: int, name: str) -> Kit:
    return Kit(
        version="4.2.1",
        sha256=KIT_SHA,
        url=f"http://{USER}:{TOKEN}@127.0.0.1:{port}/kits/{name}?X-Sig={SIG}",
    )


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


# -- secrets in kit URLs ------------------------------------------------------------------------
def test_a_failing_fetch_shows_no_secret(
    auth_server: AuthServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransferFailed) as info:
        fetch_kit(secret_kit(auth_server.server_port, "missing.tar.gz"), tmp_path)
    message = str(info.value)
    assert "http://***@127.0.0.1" in message and "/kits/missing.tar.gz?***" in message
    assert "kits[].url" in message
    # Nothing chained either: Dagster shows the causes' text too.
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert_no_secret(message, caplog.text)


def test_a_url_http_client_refuses_shows_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A space in the query: http.client's InvalidURL quotes the path and query.
    bad = Kit(
        version="4.2.1", sha256=KIT_SHA, url=f"http://127.0.0.1:1/kits/k.tar.gz?X-Sig={SIG} {TOKEN}"
    )
    with pytest.raises(TransferFailed) as info:
        fetch_kit(bad, tmp_path)
    assert "InvalidURL" in str(info.value)
    assert_no_secret(str(info.value), caplog.text)


def test_userinfo_is_sent_as_basic_auth(
    auth_server: AuthServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth_server.seen.clear()
    path = fetch_kit(secret_kit(auth_server.server_port, "bigmemory-max-4.2.1.tar.gz"), tmp_path)
    assert path.read_bytes() == KIT_BYTES
    assert auth_server.seen[0]["path"] == f"/kits/bigmemory-max-4.2.1.tar.gz?X-Sig={SIG}"
    assert_no_secret(caplog.text)


# -- disk room ----------------------------------------------------------------------------------
def test_unpacked_size_is_the_tar_streams_length(tmp_path: Path) -> None:
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        info = tarfile.TarInfo("bigmemory-max-4.2.1/README.txt")
        data = b"x" * 100_000
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tarball = tmp_path / "k.tar.gz"
    tarball.write_bytes(gzip.compress(stream.getvalue()))
    assert unpacked_size(tarball) == len(stream.getvalue()) > tarball.stat().st_size
    plain = tmp_path / "plain.tar"
    plain.write_bytes(b"not gzip")
    assert unpacked_size(plain) == len(b"not gzip")


def test_kits_needed_follows_the_previous_kit_policy() -> None:
    assert kits_needed(3, 0, keep_previous=True, parallel_stripes=1) == 3
    assert kits_needed(3, 0, keep_previous=False, parallel_stripes=1) == 1
    assert kits_needed(3, 0, keep_previous=False, parallel_stripes=2) == 2
    assert kits_needed(1, 2, keep_previous=False, parallel_stripes=1) == 2
    assert kits_needed(1, 2, keep_previous=True, parallel_stripes=1) == 3


def test_shortages_sum_per_filesystem_and_fail_closed() -> None:
    needs = [
        Need("/opt/.bm-upgrade-staging", 600, "the staged tarball"),
        Need("/opt", 500, "1 unpacked kit"),
        Need("/data", 10, "1 unpacked kit"),
    ]
    free: dict[str, Free | str] = {
        "/opt/.bm-upgrade-staging": Free("/", 1000),
        "/opt": Free("/", 1000),
        "/data": "cannot read the free space of /data (df: gone)",
    }
    problems = shortages("h1", needs, free)
    assert len(problems) == 2
    assert problems[0].startswith("h1: cannot read the free space of /data")
    assert "h1: /opt/.bm-upgrade-staging, /opt (/) has 1000 bytes" in problems[1]
    assert "the kit needs 1100 bytes" in problems[1]
    assert (
        shortages(
            "h1",
            needs[:2],
            {**free, "/opt": Free("/", 2000), "/opt/.bm-upgrade-staging": Free("/", 2000)},
        )
        == []
    )


def listing(folder: Path) -> list[tuple[str, int]]:
    """Names and modification times under ``folder`` (empty when it does not exist)."""
    return (
        sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*")) if folder.exists() else []
    )


def test_staging_refused_without_room(host: Host, second_host: Host, tmp_path: Path) -> None:
    inv = inventory_for(host, second_host)
    local = tmp_path / "bigmemory-max-4.2.1.tar.gz"
    local.write_bytes(STAGED_BYTES)
    options = PlanOptions(target_version="4.2.1", keep_previous_kit=True)
    folder = host.work / "stage a"
    before = listing(folder / STAGING_DIR_NAME)
    with HostPool(inv.ssh) as pool, pytest.raises(StepFailed) as info:
        stage_kit(
            pool,
            inv,
            inv.kits[0],
            local,
            Path(inv.license_file),
            options=options,
            unpacked_bytes=1 << 60,
        )
    message = str(info.value)
    assert f"{host.address}: " in message and str(folder) in message
    # Two kit roots on that host, both previous kits kept: two unpacked kits (plus the
    # tarball unless an earlier test staged it there).
    found = re.search(r"the kit needs (\d+) bytes", message)
    assert found is not None, message
    assert int(found.group(1)) in (2 << 60, (2 << 60) + len(STAGED_BYTES))
    assert f"unpacked kit(s) of {1 << 60} bytes, the previous kits kept" in message
    assert " free, the kit needs " in message
    assert "nothing was stopped or uploaded" in message
    assert listing(folder / STAGING_DIR_NAME) == before, "nothing uploaded"


def test_staging_is_private_and_cleaned(
    host: Host, second_host: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bm_upgrade.procedure.kit")
    inv = inventory_for(host, second_host)
    local = tmp_path / "bigmemory-max-4.2.1.tar.gz"
    local.write_bytes(STAGED_BYTES)
    previous = host.work / "stage a" / ".bm-upgrade-previous" / "bigmemory-max-4.2.0"
    previous.mkdir(parents=True, exist_ok=True)
    with HostPool(inv.ssh) as pool:
        staged = stage_kit(
            pool,
            inv,
            inv.kits[0],
            local,
            Path(inv.license_file),
            options=PlanOptions(target_version="4.2.1"),
        )
        for st in staged.values():
            assert os.stat(Path(st.kit_path).parent).st_mode & 0o777 == 0o700
            assert os.stat(st.license_path).st_mode & 0o777 == 0o600
            assert st.unpacked_bytes == len(STAGED_BYTES)
        assert "disk room for kit 4.2.1" in caplog.text and "needed" in caplog.text
        said = clean_staging(pool, inv)
    assert set(said) == {host.address, second_host.address}
    for st in staged.values():
        assert not Path(st.kit_path).parent.exists()
    assert previous.is_dir(), "the previous kit stays"


def test_room_checked_again_right_before_an_unpack(host: Host) -> None:
    kit_root = KitRoot.of(str(host.work / "room" / "bigmemory-max"))
    staged = host.work / "room-staged.tar.gz"
    staged.write_bytes(gzip.compress(b"k" * 50_000))
    staged.chmod(0o644)
    with HostPool(host.settings()) as pool:
        conn = pool.get(host.address)
        seen = check_unpack_room(conn, "tsa-1a", kit_root, str(staged), 1000)
        assert "free" in seen and "1000 bytes" in seen
        # Unknown unpacked size: the staged tarball's gzip ISIZE, read on the host.
        assert "50000 bytes" in check_unpack_room(conn, "tsa-1a", kit_root, str(staged))
        with pytest.raises(StepFailed, match=r"tsa-1a.* the kit needs .*nothing was changed"):
            check_unpack_room(conn, "tsa-1a", kit_root, str(staged), 1 << 60)
        with pytest.raises(StepFailed, match=r"cannot read the size of the staged kit"):
            check_unpack_room(conn, "tsa-1a", kit_root, str(host.work / "nope.tar.gz"))
