"""The operator's controls in the UI: per cluster, ``approve_<cluster>`` (decide on a waiting
canary) and ``pause_<cluster>`` (pause a run at its next safe point), small jobs launched from
the launchpad with the upgrade run's id.

They do what `bm-upgrade approve|reject|pause RUN_ID` do (:mod:`bm_upgrade.defs.approval`,
:mod:`bm_upgrade.defs.pausing`): write the decision or the pause on the upgrade run's tags,
where its steps read them. They carry no ``cluster`` tag: the run queue allows one run per
``cluster`` tag value (deploy/dagster.yaml) and the cluster's claim (defs/runclaim.py) reads
it, so a control job with it would wait behind the very run it acts on. They load no
inventory and reach no host: the cluster's name is all they keep.
"""

from collections.abc import Callable
from enum import Enum
from pathlib import Path

import dagster as dg
from pydantic import Field

from bm_upgrade.defs.approval import APPROVED, REJECTED, record_decision
from bm_upgrade.defs.op_context import one_sentence
from bm_upgrade.defs.pausing import request_pause
from bm_upgrade.inventory import Inventory, load_inventory

CONTROL_TAG = "bm_upgrade/control"
"""The tag of a control job's runs, naming the cluster (not ``cluster``: see the module)."""


class Verdict(Enum):
    approved = APPROVED
    rejected = REJECTED


class ApprovalConfig(dg.Config):
    """A decision on the canary of a waiting upgrade run."""

    run_id: str = Field(description="The upgrade run whose approve_canary step waits.")
    decision: Verdict = Field(
        description="approved: the other stripes go on; rejected: "
        "the run ends, the canary upgraded, nothing else touched."
    )
    by: str = Field(description="Who decides (recorded on the run).")
    note: str = Field(default="", description="Why, for the record (optional).")


class PauseConfig(dg.Config):
    """A pause asked of an upgrade run."""

    run_id: str = Field(description="The upgrade run to pause at its next safe point.")
    by: str = Field(description="Who asks (recorded on the run).")


def approve_job_name(cluster: str) -> str:
    return f"approve_{cluster}"


def pause_job_name(cluster: str) -> str:
    return f"pause_{cluster}"


def _cluster(context: dg.OpExecutionContext) -> str:
    """The cluster this control job acts on (its job's tag, not the run's)."""
    return context.job_def.tags[CONTROL_TAG]


@dg.op(name="record_decision", description="Record the decision on the upgrade run's tags.")
def record_decision_op(context: dg.OpExecutionContext, config: ApprovalConfig) -> None:
    with one_sentence():
        made, line = record_decision(
            context.instance,
            config.run_id.strip(),
            config.decision.value,
            by=config.by,
            note=config.note,
            cluster=_cluster(context),
        )
    context.log.info(line)
    context.add_output_metadata(
        {"run_id": made.run_id, "decision": made.decision, "by": made.by, "at": made.at}
    )


@dg.op(name="request_pause", description="Ask the upgrade run to pause at its next safe point.")
def request_pause_op(context: dg.OpExecutionContext, config: PauseConfig) -> None:
    run_id = config.run_id.strip()
    with one_sentence():
        asked = request_pause(context.instance, run_id, config.by, cluster=_cluster(context))
    context.log.info(
        f"run {run_id}: pause asked by {asked.by} at {asked.at}; the work in progress "
        "finishes, then the run ends FAILURE saying so"
    )
    context.add_output_metadata({"run_id": run_id, "by": asked.by, "at": asked.at})


def build_control_jobs(inventory: Inventory) -> list[dg.JobDefinition]:
    """``approve_<cluster>`` and ``pause_<cluster>`` for one inventory's cluster."""
    cluster = inventory.cluster
    tags = {CONTROL_TAG: cluster}
    return [
        dg.JobDefinition(
            graph_def=dg.GraphDefinition(
                name=approve_job_name(cluster), node_defs=[record_decision_op]
            ),
            description=f"Approve or reject the canary of a waiting upgrade_{cluster} run "
            "(as `bm-upgrade approve|reject RUN_ID`).",
            tags=tags,
            executor_def=dg.in_process_executor,
        ),
        dg.JobDefinition(
            graph_def=dg.GraphDefinition(
                name=pause_job_name(cluster), node_defs=[request_pause_op]
            ),
            description=f"Pause an upgrade_{cluster} run at its next safe point (as "
            "`bm-upgrade pause RUN_ID`): the stripes in progress finish, nothing new starts.",
            tags=tags,
            executor_def=dg.in_process_executor,
        ),
    ]


def approve_job_for_inventory(inventory_path: str) -> dg.JobDefinition:
    """``approve_<cluster>`` of one inventory file, rebuilt in the process that runs it."""
    return _control_job(inventory_path, approve_job_name)


def pause_job_for_inventory(inventory_path: str) -> dg.JobDefinition:
    """``pause_<cluster>`` of one inventory file, rebuilt in the process that runs it."""
    return _control_job(inventory_path, pause_job_name)


def _control_job(inventory_path: str, name: Callable[[str], str]) -> dg.JobDefinition:
    inventory = load_inventory(str(Path(inventory_path).resolve()))
    wanted = name(inventory.cluster)
    return next(job for job in build_control_jobs(inventory) if job.name == wanted)
