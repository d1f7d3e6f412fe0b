"""`bm-upgrade sandbox up|down|verify`: registered on bm_upgrade.cli's parser.

Handlers return exit codes (0 ok, 2 the user's mistake, 1 a failure) and print one clear
message instead of a traceback; the sandbox's own errors never reach bm_upgrade.cli.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``sandbox`` command and its ``up``, ``down``, ``verify`` subcommands."""
    sandbox = subparsers.add_parser(
        "sandbox", help="a BigMemory Max 4.2 look-alike cluster on this machine"
    )
    sub = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")

    p = sub.add_parser("up", help="start a sandbox; writes DIR/inventory.yaml")
    p.add_argument(
        "topology",
        metavar="TOPOLOGY",
        help="a topology file, or a shipped name (small, demo, bench)",
    )
    p.add_argument("--dir", required=True, type=Path, metavar="DIR")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up (and stop everything) after this long (default 120)",
    )
    p.set_defaults(handler=_cmd_up)

    p = sub.add_parser("down", help="stop every process of a sandbox")
    p.add_argument("--dir", required=True, type=Path, metavar="DIR")
    p.set_defaults(handler=_cmd_down)

    p = sub.add_parser("verify", help="acknowledged writes found / lost, per stripe")
    p.add_argument("--dir", required=True, type=Path, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser(
        "fault",
        help="inject a fault (or --clear faults) for tests and rehearsals",
        description="KIND: no-sync SERVER | crash-on-start VERSION|NAME | host-down HOST|NAME "
        "| kill NAME | expired-license license|NAME|HOST | slow-stop NAME "
        "[--seconds S]. --clear [TARGET] clears every fault (on TARGET); --list prints "
        "the faults in force.",
    )
    p.add_argument("--dir", required=True, type=Path, metavar="DIR")
    p.add_argument("--clear", action="store_true", help="clear faults instead of injecting")
    p.add_argument("--list", action="store_true", help="print the faults in force")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        metavar="S",
        help="slow-stop: how much longer a stop takes (default 5)",
    )
    p.add_argument("args", nargs="*", metavar="KIND TARGET")
    p.set_defaults(handler=_cmd_fault)


def _cmd_up(args: argparse.Namespace) -> int:
    from bm_upgrade.sandbox import cluster, topology_model

    try:
        inventory = cluster.up(
            args.topology,
            args.dir,
            timeout_s=args.timeout,
            progress=lambda msg: print(f"sandbox: {msg}", file=sys.stderr),
        )
    except topology_model.TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (cluster.SandboxError, OSError) as exc:
        print(f"failed: sandbox up in {args.dir}: {exc}", file=sys.stderr)
        return 1
    print(inventory)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from bm_upgrade.sandbox import cluster

    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a folder; give the --dir of `sandbox up`", file=sys.stderr)
        return 2
    # down stops every process that names the folder: never a folder up did not make.
    made_by_up = any((args.dir / name).exists() for name in ("sandbox.json", "address-block"))
    if not made_by_up and any(args.dir.iterdir()):
        print(
            f"error: {args.dir} holds no sandbox (no sandbox.json) but other files; give "
            "the --dir of `sandbox up`",
            file=sys.stderr,
        )
        return 2
    try:
        stopped = cluster.down(args.dir)
    except (cluster.SandboxError, OSError) as exc:
        print(f"failed: sandbox down in {args.dir}: {exc}", file=sys.stderr)
        return 1
    print(f"sandbox in {args.dir} is down ({len(stopped)} process(es) stopped)")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from bm_upgrade.sandbox import cluster

    if not (args.dir / "sandbox.json").is_file():
        print(
            f"error: {args.dir} holds no sandbox (no sandbox.json); give the --dir of `sandbox up`",
            file=sys.stderr,
        )
        return 2
    try:
        result = cluster.verify(args.dir)
    except (cluster.SandboxError, OSError) as exc:
        print(f"failed: sandbox verify in {args.dir}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"acknowledged writes: {result['acked']}, lost: {result['lost']}")
        for stripe, counts in result["per_stripe"].items():
            print(f"  {stripe}: acked {counts['acked']}, lost {counts['lost']}")
    return 0 if result["lost"] == 0 else 1


def _cmd_fault(args: argparse.Namespace) -> int:
    from bm_upgrade.sandbox import faults

    if args.list:
        if not (args.dir / "sandbox.json").is_file():
            print(
                f"error: {args.dir} holds no sandbox (no sandbox.json); give the --dir of "
                "`sandbox up`",
                file=sys.stderr,
            )
            return 2
        for record in faults.active(args.dir):
            extra = f" ({record['seconds']:g} s)" if "seconds" in record else ""
            print(f"{record.get('kind')} {record.get('target')}{extra}")
        return 0
    if args.clear:
        if len(args.args) > 1:
            print("error: sandbox fault --clear takes at most one TARGET", file=sys.stderr)
            return 2
        target = args.args[0] if args.args else None
        try:
            messages = faults.clear(args.dir, target)
        except (faults.FaultError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print("\n".join(messages) or f"no fault to clear{f' on {target}' if target else ''}")
        return 0
    if len(args.args) != 2:
        print(
            f"error: sandbox fault needs KIND TARGET (KIND: {', '.join(faults.KINDS)}), or "
            "--clear [TARGET]",
            file=sys.stderr,
        )
        return 2
    kind = faults.KINDS.get(args.args[0])
    if args.seconds is not None and (args.seconds <= 0 or kind is None or not kind.takes_seconds):
        takes = ", ".join(k.name for k in faults.KINDS.values() if k.takes_seconds)
        print(f"error: --seconds goes with {takes} only, and must be > 0", file=sys.stderr)
        return 2
    try:
        print(faults.inject(args.dir, args.args[0], args.args[1], seconds=args.seconds))
    except faults.FaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"failed: sandbox fault {args.args[0]} {args.args[1]}: {exc}", file=sys.stderr)
        return 1
    return 0
