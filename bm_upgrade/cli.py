"""The `bm-upgrade` command.

Every user mistake ends in one message naming the file/field or host/server and exit code 2;
an operational failure (a host down, a step that failed) in exit code 1; never a traceback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from bm_upgrade.errors import BmUpgradeError, UserError
from bm_upgrade.interrupts import FinishSafelyOnSignals
from bm_upgrade.sandbox.cli import register as register_sandbox

if TYPE_CHECKING:
    from bm_upgrade.defs.launch import RunOutcome
    from bm_upgrade.inventory import Inventory
    from bm_upgrade.plan import PlanOptions
    from bm_upgrade.plan.estimate import Prediction
    from bm_upgrade.progress_terminal import ProgressDisplay

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
    from bm_upgrade.plan.estimate import window_fit
    from bm_upgrade.plan.render import render_prediction

    inventory = load_inventory(args.inventory)
    options = PlanOptions.from_inventory(
        inventory,
        target_version=args.to,
        allow_downtime=args.allow_downtime or None,
        accept_data_loss=args.accept_data_loss or None,
    )
    plan = make_plan(inventory, options=options)
    prediction = _prediction(inventory, options)
    fit = window_fit(prediction, inventory.window, datetime.datetime.now(datetime.UTC))
    if args.json:
        predicted = {**prediction.as_dict(), "window": fit}
        steps = [step.as_dict() for step in plan.steps]
        print(json.dumps({"steps": steps, "prediction": predicted}, indent=2))
    else:
        print(render_plan(plan))
        print("\n" + "\n".join([*render_prediction(prediction), f"  {fit}"]))
    return 0


def _prediction(inventory: Inventory, options: PlanOptions) -> Prediction:
    """The run's expected duration: from the past runs in DAGSTER_HOME's instance, or,
    DAGSTER_HOME unset, from the timeouts (without importing Dagster)."""
    if os.environ.get("DAGSTER_HOME"):
        from bm_upgrade.defs.prediction import predict_here

        return predict_here(inventory, options)
    from bm_upgrade.plan import make_plan
    from bm_upgrade.plan.estimate import from_timeouts, shape_options, work_of

    work = work_of(make_plan(inventory, options=shape_options(options)), inventory)
    return from_timeouts(work, "DAGSTER_HOME is not set: no past run read")


def _cmd_status(args: argparse.Namespace) -> int:
    from bm_upgrade.status import run_status

    return run_status(args.inventory, as_json=args.json)


def _print_run_id(run_id: str) -> None:
    print(f"run_id: {run_id}", flush=True)


def _progress(args: argparse.Namespace) -> ProgressDisplay:
    """Where a run's progress shows: a block redrawn on a terminal, plain lines elsewhere."""
    from bm_upgrade.progress_terminal import ProgressDisplay

    return ProgressDisplay.for_stderr(verbose=args.verbose)


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
    display = _progress(args)
    with FinishSafelyOnSignals(display.notice_stream()) as signals:
        try:
            outcome = run_upgrade(
                args.inventory,
                target=args.to,
                dry_run=args.dry_run,
                overrides=overrides,
                on_run_id=signals.on_run_id(_print_run_id),
                display=display,
                verbose=args.verbose,
            )
        finally:
            display.close()
    return _finish(outcome)


def _cmd_rerun(args: argparse.Namespace) -> int:
    from bm_upgrade.defs.launch import rerun

    display = _progress(args)
    with FinishSafelyOnSignals(display.notice_stream()) as signals:
        try:
            outcome = rerun(
                args.run_id,
                on_run_id=signals.on_run_id(_print_run_id),
                inventory_changed=args.inventory_changed,
                on_notice=display.notice,
                display=display,
                verbose=args.verbose,
            )
        finally:
            display.close()
    return _finish(outcome)


def _cmd_decide(args: argparse.Namespace) -> int:
    """`approve` / `reject`: record the decision on a run whose canary gate waits."""
    from bm_upgrade.defs.approval import record_decision
    from bm_upgrade.defs.instance import instance

    decision = "approved" if args.command == "approve" else "rejected"
    _, line = record_decision(instance(), args.run_id, decision, by=args.by, note=args.note or "")
    print(line)
    return 0


def _cmd_pause(args: argparse.Namespace) -> int:
    """`pause`: ask a run to pause at its next safe point."""
    from bm_upgrade.defs.instance import instance
    from bm_upgrade.defs.pausing import request_pause

    asked = request_pause(instance(), args.run_id, args.by)
    print(
        f"run {args.run_id}: pause asked by {asked.by} at {asked.at}; the stripe in progress "
        "finishes, nothing new starts, then the run ends FAILURE saying so "
        f"(`bm-upgrade rerun {args.run_id}` resumes it)"
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """`report`: a run's evidence report, as Markdown on stdout, the HTML page to a file."""
    from bm_upgrade.defs.instance import instance
    from bm_upgrade.defs.report_asset import evidence_report

    report, made = evidence_report(instance(), args.run_id)
    if made:
        print(f"run {args.run_id} had no report yet: made it now", file=sys.stderr)
    if args.html is not None:
        try:
            args.html.write_text(report["html"], encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {args.html} ({exc}); give a writable path") from None
        print(f"HTML report written to {args.html}", file=sys.stderr)
    print(report["markdown"], end="")
    return 0


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
        display = _progress(args)
        try:
            outcome = run_upgrade(
                inventory,
                target=args.to,
                on_run_id=_print_run_id,
                display=display,
                verbose=args.verbose,
            )
        finally:
            display.close()
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


# The on/off options, each with one help text wherever a command takes it.
_SWITCHES = {
    "--json": "print JSON instead of text",
    "--dry-run": "probe everything, report every step, change nothing",
    "--allow-downtime": "accept downtime for stripes without a mirror",
    "--accept-data-loss": "accept losing the data of non-persistent stripes without a mirror",
    "--inventory-changed": "re-execute although the inventory file changed since that run",
    "--yes": "record every new key shown, without asking (check them first)",
    "--keep": "leave the sandbox running",
    "--verbose": "show Dagster's log lines of every step too (the progress then in plain lines)",
}


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    summary: str,
    *switches: str,
    takes: str | None = "INVENTORY",
) -> argparse.ArgumentParser:
    """Add command ``name``: its one argument ``takes`` (none if None), its on/off options
    ``switches`` (see _SWITCHES), and the handler that runs it."""
    parser = sub.add_parser(name, help=summary)
    if takes is not None:
        parser.add_argument(takes.lower(), metavar=takes)
    for switch in switches:
        parser.add_argument(switch, action="store_true", help=_SWITCHES[switch])
    parser.set_defaults(handler=handler)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with a usage mistake told in one line (what is wrong, where to read
    more) and exit code 2, like every other user error. Its subcommands' parsers are of this
    class too (argparse makes them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        # An argument echoed back may hold a newline: shown escaped, the message stays a line.
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        self.exit(2, f"error: {self.prog}: {shown}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="bm-upgrade",
        description="Rolling maintenance upgrades of BigMemory Max 4.2 clusters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, "validate", _cmd_validate, "check an inventory file; exit 2 with every error")
    _command(sub, "schema", _cmd_schema, "print the inventory's JSON Schema", takes=None)
    p = _command(
        sub,
        "plan",
        _cmd_plan,
        "print the ordered upgrade steps (no network)",
        "--json",
        "--allow-downtime",
        "--accept-data-loss",
    )
    p.add_argument("--to", metavar="VERSION", help="target version (default: the inventory's)")
    _command(sub, "status", _cmd_status, "live roles, states and versions of every node", "--json")
    p = _command(
        sub,
        "run",
        _cmd_run,
        "run the upgrade job through Dagster (shows in the UI)",
        "--dry-run",
        "--allow-downtime",
        "--accept-data-loss",
        "--verbose",
    )
    p.add_argument("--to", metavar="VERSION", help="target version (default: the inventory's)")
    _command(
        sub,
        "rerun",
        _cmd_rerun,
        "re-execute a failed or canceled run (or one whose process was killed) from its "
        "failed step",
        "--inventory-changed",
        "--verbose",
        takes="RUN_ID",
    )
    for name, summary in (
        ("approve", "approve the canary of a run waiting at its approval gate (or timed out)"),
        ("reject", "reject the canary of a run waiting at its approval gate: the run ends"),
    ):
        p = _command(sub, name, _cmd_decide, summary, takes="RUN_ID")
        p.add_argument("--by", metavar="NAME", help="who decides (default: your login name)")
        p.add_argument("--note", metavar="TEXT", help="why, for the run's record")
    p = _command(
        sub,
        "pause",
        _cmd_pause,
        "pause a run at its next safe point (the stripe in progress finishes)",
        takes="RUN_ID",
    )
    p.add_argument("--by", metavar="NAME", help="who asks (default: your login name)")
    p = _command(
        sub,
        "report",
        _cmd_report,
        "a run's evidence report (Markdown; the HTML page with --html), made now if a "
        "finished run has none",
        takes="RUN_ID",
    )
    p.add_argument("--html", type=Path, metavar="FILE", help="write the HTML page to FILE")
    _command(
        sub,
        "trust-hosts",
        _cmd_trust_hosts,
        "show each host's key fingerprint and record it in known_hosts on your word "
        "(first contact)",
        "--yes",
    )
    p = _command(
        sub,
        "demo",
        _cmd_demo,
        "sandbox up + a full upgrade + a report, then down",
        "--keep",
        "--verbose",
        takes=None,
    )
    p.add_argument("--topology", default="demo", help="a shipped topology name or a file")
    p.add_argument("--dir", type=Path, default=None, help="sandbox folder (default: temp)")
    p.add_argument("--to", metavar="VERSION", default=None)

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
