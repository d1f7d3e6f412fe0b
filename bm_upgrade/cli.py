"""The `bm-upgrade` command.

Every user mistake ends in one message naming the file/field or host/server and exit code 2;
an operational failure (a host down, a step that failed) in exit code 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from bm_upgrade.errors import BmUpgradeError, UserError

Handler = Callable[[argparse.Namespace], int]


def _cmd_validate(args: argparse.Namespace) -> int:
    from bm_upgrade.inventory import load_inventory

    inventory = load_inventory(args.inventory)
    servers = sum(1 for _ in inventory.servers())
    print(f"{args.inventory}: valid inventory of cluster {inventory.cluster!r} "
          f"({len(inventory.regions)} region(s), {servers} server(s), "
          f"target {inventory.target_version})")
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
    p.add_argument("--allow-downtime", action="store_true",
                   help="accept downtime for stripes without a mirror")
    p.add_argument("--accept-data-loss", action="store_true",
                   help="accept losing the data of non-persistent stripes without a mirror")
    p.set_defaults(handler=_cmd_plan)

    p = sub.add_parser("status", help="live roles, states and versions of every node")
    p.add_argument("inventory", metavar="INVENTORY")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_status)

    try:
        from bm_upgrade.sandbox.cli import register as register_sandbox
    except ImportError:  # the sandbox is optional in a production install
        pass
    else:
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
