"""The cluster's version matrix as an asset, ``bm_upgrade/<cluster>/version_matrix``, with its
two asset checks (procedure/version_matrix.py): ``one_version`` (every node on one version)
and ``standby_per_stripe`` (every stripe has a PASSIVE-STANDBY mirror).

The sync-status sensor observes it whenever it records a change, each run's report observes it
after the run (and the run-failure report of a failed run), and each observation comes with an
evaluation of both checks, so the asset's checks tab shows the verdict of the latest look. The
checks can also be executed from the UI: that looks at the cluster at once (the executed check
reads the inventory file and probes every server and orchestrator, like the sensor).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg

from bm_upgrade.errors import BmUpgradeError
from bm_upgrade.inventory import Inventory, load_inventory
from bm_upgrade.procedure.observe import ClusterView, observe_cluster
from bm_upgrade.procedure.version_matrix import (
    CHECK_DESCRIPTIONS,
    ONE_VERSION,
    STANDBY_PER_STRIPE,
    MatrixCheck,
    checks,
    matrix,
)
from bm_upgrade.remote import HostPool

MatrixEvent = dg.AssetObservation | dg.AssetCheckEvaluation


def matrix_key(cluster: str) -> dg.AssetKey:
    return dg.AssetKey(["bm_upgrade", cluster, "version_matrix"])


def matrix_asset(inventory: Inventory) -> dg.AssetSpec:
    return dg.AssetSpec(
        matrix_key(inventory.cluster),
        group_name="bm_upgrade",
        description=f"Every node of {inventory.cluster} with its version and state: observed "
        "by the sync_status sensor at each change and by each upgrade run's report.",
    )


def check_specs(cluster: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=matrix_key(cluster), description=CHECK_DESCRIPTIONS[name])
        for name in (ONE_VERSION, STANDBY_PER_STRIPE)
    ]


def _severity(check: MatrixCheck) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.WARN if check.warn_only else dg.AssetCheckSeverity.ERROR


def _table(view: ClusterView) -> str:
    rows = ["| kind | where | node | version | state |", "|---|---|---|---|---|"]
    rows += [
        f"| {r.kind} | {r.where} | {r.node} | {r.version or '?'} | {r.state} |"
        for r in matrix(view)
    ]
    return "\n".join(rows)


def matrix_events(
    view: ClusterView, *, upgrading: bool = False, source: str, run_id: str | None = None
) -> list[MatrixEvent]:
    """The matrix of one look as an observation, and both checks' evaluations on it.

    Args:
        upgrading: a run of the cluster is going (mixed versions then only warn).
        source: who looked (``sync_status sensor``, ``report of run ...``).
        run_id: the run whose report looked, when one did.
    """
    key = matrix_key(view.inventory.cluster)
    verdicts = checks(view, upgrading=upgrading)
    metadata: dict[str, dg.RawMetadataValue] = {
        "matrix": dg.MetadataValue.md(_table(view)),
        "versions": dg.MetadataValue.json(
            {r.node: r.version for r in matrix(view)},
        ),
        "checks": dg.MetadataValue.md(
            "\n".join(
                f"- {c.name}: {'passed' if c.passed else 'FAILED'}: {c.summary}" for c in verdicts
            )
        ),
        "source": source,
    }
    if run_id:
        metadata["run"] = dg.MetadataValue.dagster_run(run_id)
    events: list[MatrixEvent] = [dg.AssetObservation(asset_key=key, metadata=metadata)]
    for verdict in verdicts:
        events.append(dg.AssetCheckEvaluation(asset_key=key, **_verdict_fields(verdict, source)))
    return events


def _verdict_fields(verdict: MatrixCheck, source: str) -> dict[str, Any]:
    """What a check's evaluation says, whoever reports it (a look's events, the UI's run)."""
    return {
        "check_name": verdict.name,
        "passed": verdict.passed,
        "severity": _severity(verdict),
        "description": verdict.summary,
        "metadata": {
            "summary": verdict.summary,
            "details": dg.MetadataValue.json(verdict.details),
            "source": source,
        },
    }


def build_matrix_checks(inventory: Inventory, inventory_path: str) -> dg.AssetChecksDefinition:
    """Both checks, executable from the UI: one look at the servers and orchestrators now."""
    cluster = inventory.cluster

    @dg.multi_asset_check(
        specs=check_specs(cluster),
        name=f"version_matrix_checks_{cluster}",
        description=f"Looks at every server and orchestrator of {cluster} now and judges "
        "its version matrix.",
    )
    def _checks() -> Iterator[dg.AssetCheckResult]:
        try:
            current = load_inventory(inventory_path)
            with HostPool(current.ssh) as pool:
                view = observe_cluster(current, pool, clients=False)
        except BmUpgradeError as exc:
            raise dg.Failure(description=f"no look at {cluster}: {exc}") from exc
        for verdict in checks(view):
            yield dg.AssetCheckResult(
                asset_key=matrix_key(cluster), **_verdict_fields(verdict, "executed from Dagster")
            )

    return _checks
