"""The `bm-upgrade` command.

Every user mistake ends in one message naming the file/field or host/server and exit code 2;
an operational failure (a host down, a step that failed) in exit code 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bm_upgrade.errors import BmUpgradeError, UserError
from bm_upgrade.interrupts import FinishSafelyOnSignals
from bm_upgrade.sandbox.cli import register as register_sandbox

if TYPE_CHECKING:
    from bm_upgrade.defs.launch import RunOutcome

Handler = Callable[[argparse.Namespace], int]


def _cmd_validate(args: argparse.Namespace) -> int:
    from bm_upgrade.inventory import load_inventory

    inventory = load_inventory(args.inventory)
    servers = sum(1 for _ in inventory.servers())
    print(
        f"{args.inventory}: valid inventory of cluster {inventory.cluster!r} "
        f"({len(inventory.regions)} region(s), {servers} server(s), "
        f"target {inventory.target_version})"
    )
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from bm_upgrade.inventory import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from bm_upgrade.inventory import load_inventory
    from bm_upgrade.plan import PlanOptions, make_plan, render_plan

    inventory = load_inventory(args.inventory)
    options = PlanOptions.from_inventory(
        inventory,
        target_version=args.to,
        allow_downtime=args.allow_downtime or None,
        accept_data_loss=args.accept_data_loss or None,
    )
    plan = make_plan(inventory, options=options)
    if args.json:
        print(json.dumps([step.as_dict() for step in plan.steps], indent=2))
    else:
        print(render_plan(plan))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from bm_upgrade.status import run_status

    return run_status(args.inventory, as_json=args.json)


def _print_run_id(run_id: str) -> None:
    print(f"run_id: {run_id}", flush=True)


def _print_notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _finish(outcome: RunOutcome) -> int:
    if outcome.report:
        print(outcome.report)
    if not outcome.success:
        print(f"failed: {outcome.failure}", file=sys.stderr)
        print(f"after fixing the cause: bm-upgrade rerun {outcome.run_id}", file=sys.stderr)
        return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from bm_upgrade.defs.launch import run_upgrade

    overrides: dict[str, object] = {}
    if args.allow_downtime:
        overrides["allow_downtime"] = True
    if args.accept_data_loss:
        overrides["accept_data_loss"] = True
    with FinishSafelyOnSignals() as signals:
        outcome = run_upgrade(
            args.inventory,
            target=args.to,
            dry_run=args.dry_run,
            overrides=overrides,
            on_run_id=signals.on_run_id(_print_run_id),
        )
    return _finish(outcome)


def _cmd_rerun(args: argparse.Namespace) -> int:
    from bm_upgrade.defs.launch import rerun

    with FinishSafelyOnSignals() as signals:
        outcome = rerun(
            args.run_id,
            on_run_id=signals.on_run_id(_print_run_id),
            inventory_changed=args.inventory_changed,
            on_notice=_print_notice,
        )
    return _finish(outcome)


def _ask(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _cmd_trust_hosts(args: argparse.Namespace) -> int:
    from bm_upgrade.trust import trust_hosts

    return trust_hosts(
        args.inventory,
        yes=args.yes,
        ask=_ask if sys.stdin.isatty() else None,
        out=sys.stdout,
        err=sys.stderr,
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    """Sandbox up, a full upgrade through the Dagster job while clients write, the report,
    `sandbox verify`, sandbox down."""
    import os
    import tempfile

    from bm_upgrade.defs.launch import ensure_instance_yaml, run_upgrade
    from bm_upgrade.sandbox import cluster

    directory: Path = args.dir or Path(tempfile.mkdtemp(prefix="bm-upgrade-demo-"))
    if not os.environ.get("DAGSTER_HOME"):
        home = Path(tempfile.mkdtemp(prefix="bm-upgrade-dagster-"))
        os.environ["DAGSTER_HOME"] = str(home)
        print(f"DAGSTER_HOME was not set; run history goes to {home}", file=sys.stderr)
    ensure_instance_yaml(Path(os.environ["DAGSTER_HOME"]))
    print(f"sandbox: starting topology {args.topology} in {directory}", file=sys.stderr)
    try:
        inventory = cluster.up(
            args.topology, directory, progress=lambda msg: print(f"sandbox: {msg}", file=sys.stderr)
        )
        outcome = run_upgrade(inventory, target=args.to, on_run_id=_print_run_id)
        code = _finish(outcome)
        result = cluster.verify(directory)
        print(f"sandbox verify: {result['acked']} acknowledged writes, {result['lost']} lost")
        if result["lost"]:
            code = 1
    except cluster.SandboxError as exc:
        print(f"failed: demo sandbox in {directory}: {exc}", file=sys.stderr)
        code = 1
    finally:
        if not args.keep:
            cluster.down(directory)
            print(f"sandbox in {directory} is down", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bm-upgrade",
        description="Rolling maintenance upgrades of BigMemory Max 4.2 clusters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check an inventory file; exit 2 with every error")
    p.add_argument("inventory", metavar="INVENTORY")
    p.set_defaults(handler=_cmd_validate)

    p = sub.add_parser("schema", help="print the inventory's JSON Schema")
    p.set_defaults(handler=_cmd_schema)

    p = sub.add_parser("plan", help="print the ordered upgrade steps (no network)")
    p.add_argument("inventory", metavar="INVENTORY")
    p.add_argument("--to", metavar="VERSION", help="target version (default: the inventory's)")
    p.add_argument("--json", action="store_true", help="a JSON list of steps")
    p.add_argument(
        "--allow-downtime", action="store_true", help="accept downtime for stripes without a mirror"
    )
    p.add_argument(
        "--accept-data-loss",
        action="store_true",
        help="accept losing the data of non-persistent stripes without a mirror",
    )
    p.set_defaults(handler=_cmd_plan)

    p = sub.add_parser("status", help="live roles, states and versions of every node")
    p.add_argument("inventory", metavar="INVENTORY")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_status)

    p = sub.add_parser("run", help="run the upgrade job through Dagster (shows in the UI)")
    p.add_argument("inventory", metavar="INVENTORY")
    p.add_argument("--to", metavar="VERSION", help="target version (default: the inventory's)")
    p.add_argument(
        "--dry-run", action="store_true", help="probe everything, report every step, change nothing"
    )
    p.add_argument("--allow-downtime", action="store_true")
    p.add_argument("--accept-data-loss", action="store_true")
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser(
        "rerun",
        help="re-execute a failed or canceled run (or one whose "
        "process was killed) from its failed step",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument(
        "--inventory-changed",
        action="store_true",
        help="re-execute although the inventory file changed since that run",
    )
    p.set_defaults(handler=_cmd_rerun)

    p = sub.add_parser(
        "trust-hosts",
        help="show each host's key fingerprint and record it in "
        "known_hosts on your word (first contact)",
    )
    p.add_argument("inventory", metavar="INVENTORY")
    p.add_argument(
        "--yes",
        action="store_true",
        help="record every new key shown, without asking (check them first)",
    )
    p.set_defaults(handler=_cmd_trust_hosts)

    p = sub.add_parser("demo", help="sandbox up + a full upgrade + a report, then down")
    p.add_argument("--topology", default="demo", help="a shipped topology name or a file")
    p.add_argument("--dir", type=Path, default=None, help="sandbox folder (default: temp)")
    p.add_argument("--to", metavar="VERSION", default=None)
    p.add_argument("--keep", action="store_true", help="leave the sandbox running")
    p.set_defaults(handler=_cmd_demo)

    register_sandbox(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BmUpgradeError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
