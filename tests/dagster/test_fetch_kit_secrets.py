"""The download step with a kit URL carrying ``user:token@`` and a signed query: neither its
dry-run metadata, nor its failure (description and metadata), nor its log shows them."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import dagster as dg
import pytest
import yaml

from bm_upgrade.defs.config import RunSettings, UpgradeConfig
from bm_upgrade.defs.ops import download_op
from bm_upgrade.defs.resources import ClusterResource
from bm_upgrade.inventory import load_inventory
from bm_upgrade.procedure.kit import CACHE_DIR_ENV
from tests.unit.inventories import minimal

TOKEN, SIG = "t0ken-S3CRET", "sig-Q5ECRET"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_and_cluster(tmp_path: Path, *, dry_run: bool) -> tuple[RunSettings, ClusterResource]:
    data = minimal()
    data["kits"][0]["url"] = (
        f"https://deploy:{TOKEN}@127.0.0.1:{closed_port()}/kits/"
        f"bigmemory-max-{data['kits'][0]['version']}.tar.gz?X-Sig={SIG}"
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    inventory = load_inventory(path)
    config = UpgradeConfig(**{**UpgradeConfig.defaults_for(inventory), "dry_run": dry_run})
    return RunSettings.from_config(config, inventory), ClusterResource(inventory_path=str(path))


def shown(context: dg.OpExecutionContext) -> str:
    return repr(context.get_output_metadata("result"))


def test_dry_run_metadata_shows_the_url_redacted(tmp_path: Path) -> None:
    settings, cluster = settings_and_cluster(tmp_path, dry_run=True)
    context = dg.build_op_context()
    download_op(context, settings, cluster)
    metadata = shown(context)
    assert "https://***@127.0.0.1:" in metadata and "?***" in metadata
    assert TOKEN not in metadata and SIG not in metadata


def test_a_failed_fetch_shows_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    settings, cluster = settings_and_cluster(tmp_path, dry_run=False)
    with pytest.raises(dg.Failure) as info:
        download_op(dg.build_op_context(), settings, cluster)
    failure = info.value
    texts = [failure.description or "", repr(failure.metadata), caplog.text]
    assert "https://***@127.0.0.1:" in texts[0] and "kits[].url" in texts[0]
    for text in texts:
        assert TOKEN not in text and SIG not in text, text
