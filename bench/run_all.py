"""`make bench`: every benchmark, then one table of the performance goals and a JSON file.

Each bench prints its own detail, then the table of the performance issue's goals measured in
that run is printed and every figure is written to a JSON file::

    .venv/bin/python bench/run_all.py [--json FILE] [--quick] [--only NAME ...]

``--json`` (default ``bench/results/latest.json``, not tracked by git) receives
``{"started", "finished", "machine", "settings", "figures": {bench: {...}}, "goals": [...]}``:
each bench's figures as its ``measure`` function returned them, and the table's rows
(``name``, ``measured``, ``goal``, ``unit``, ``ok``). ``--quick`` uses small settings (small
files, one run per case, a 2 x 2 width topology) to check the benches work on a busy machine;
its figures are not the issue's. ``--only`` runs some benches (names below).

Goals (the issue's numbering): 1. overhead = wall - bound of bench/upgrade.yaml, at most 2 s
with parallel_stripes 1 and 3 s with 4; 2. wall of 16 stripes side by side / wall of 2, at most
1.5, no acknowledged write lost; 3. the longest gap between a client's acknowledged writes
during a failover / the election time, at most 1.2 (the worst of every upgrade run here);
4. staging to 8 hosts, 8 scp side by side / bm_upgrade, at least 1.0; 5. kept: sandbox up,
server memory, sensor tick, code location load near their reference values (3.3 s, 22.8 MB,
0.19 s, 1.17 s): "ok" within 20 % above the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_sandbox
import bench_stage
import bench_stopping
import bench_storage
import bench_upgrade
import bench_upload
import bench_watch
import bench_width

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
KEEP_TOLERANCE = 1.2
"""A kept figure is ok up to this factor of its reference value."""

FULL: dict[str, dict[str, Any]] = {
    "sandbox": {},
    "upload": {"size_mb": 128, "repeat": 2},
    "upgrade": {"parallel_values": (1, 4), "runs": 3},
    "width": {"regions": 4, "stripes": 4},
    "stage": {"hosts": 8, "size_mb": 96, "repeat": 2},
    "watch": {"ticks": 5, "inventories": 50},
    "stopping": {"looks": 200},
    "storage": {"events": 500, "steps": 20, "repeat": 3},
}
QUICK: dict[str, dict[str, Any]] = {
    "sandbox": {},
    "upload": {"size_mb": 16, "repeat": 1},
    "upgrade": {"parallel_values": (1, 4), "runs": 1},
    "width": {"regions": 2, "stripes": 2},
    "stage": {"hosts": 8, "size_mb": 16, "repeat": 1},
    "watch": {"ticks": 2, "inventories": 50},
    "stopping": {"looks": 50},
    "storage": {"events": 100, "steps": 5, "repeat": 1},
}
BENCHES: dict[str, Callable[..., dict[str, Any]]] = {
    "sandbox": bench_sandbox.measure,
    "upload": bench_upload.measure,
    "upgrade": bench_upgrade.measure,
    "width": bench_width.measure,
    "stage": bench_stage.measure,
    "watch": bench_watch.measure,
    "stopping": bench_stopping.measure,
    "storage": bench_storage.run,
}


def pick(figures: dict[str, Any], *path: str) -> Any:
    """``figures[a][b]...``, or None where a level is missing (a bench failed or did not run)."""
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def goal_rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The table: (name, measured, goal, unit, ok) for each of the issue's goals."""

    def at_most(name: str, value: Any, goal: float, unit: str) -> dict[str, Any]:
        ok = None if value is None else value <= goal
        return {
            "name": name,
            "measured": value,
            "goal": f"<= {goal:g} {unit}".strip(),
            "unit": unit,
            "ok": ok,
        }

    def at_least(name: str, value: Any, goal: float, unit: str) -> dict[str, Any]:
        ok = None if value is None else value >= goal
        return {
            "name": name,
            "measured": value,
            "goal": f">= {goal:g} {unit}".strip(),
            "unit": unit,
            "ok": ok,
        }

    def kept(name: str, value: Any, reference: float, unit: str) -> dict[str, Any]:
        row = at_most(name, value, reference * KEEP_TOLERANCE, unit)
        row["goal"] = f"{reference:g} {unit} (<= {reference * KEEP_TOLERANCE:.3g})"
        return row

    stall_runs = [pick(figures, "upgrade", p, "stalls") for p in ("p1", "p4")]
    stall_runs.append(pick(figures, "width", "wide", "stalls"))
    ratios = [s["max_gap_per_election"] for s in stall_runs if s and s["max_gap_per_election"]]
    width_stripes = pick(figures, "width", "stripes") or "?"
    wide = pick(figures, "width", "ratio")
    up, p1, p4 = figures.get("upgrade", {}), "p1", "p4"
    return [
        at_most("1. overhead, parallel_stripes 1", pick(up, p1, "overhead_s"), 2.0, "s"),
        at_most("1. overhead, parallel_stripes 4", pick(up, p4, "overhead_s"), 3.0, "s"),
        at_most(f"2. wall({width_stripes} stripes) / wall(2)", wide, 1.5, "x"),
        at_most(f"2. writes lost, {width_stripes} stripes", pick(figures, "width", "lost"), 0, ""),
        at_most("3. client stall / election_s", max(ratios) if ratios else None, 1.2, "x"),
        at_least("4. staging 8 hosts: scp / bm_upgrade", pick(figures, "stage", "ratio"), 1, "x"),
        kept("5. sandbox up (bench.yaml)", pick(figures, "sandbox", "sandbox_up_s"), 3.3, "s"),
        kept("5. server RSS, max", pick(figures, "sandbox", "server_rss_mb_max"), 22.8, "MB"),
        kept("5. sensor tick, median", pick(figures, "watch", "sensor_tick_median_s"), 0.19, "s"),
        kept("5. code location load, 50 inventories", pick(figures, "watch", "load_s"), 1.17, "s"),
    ]  # fmt: skip


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print(f"{'goal':44s} {'measured':>10s} {'goal':>18s}  result")
    for row in rows:
        value = row["measured"]
        shown = "-" if value is None else f"{value:g} {row['unit']}".strip()
        result = "not measured" if row["ok"] is None else ("ok" if row["ok"] else "over")
        print(f"{row['name']:44s} {shown:>10s} {row['goal']:>18s}  {result}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the figures go")
    parser.add_argument("--quick", action="store_true", help="small settings (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="these benches only")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    started = time.time()
    figures: dict[str, Any] = {}
    for name, bench in BENCHES.items():
        if args.only and name not in args.only:
            continue
        print(f"\n== {name} ==", flush=True)
        try:
            figures[name] = bench(**settings[name])
        except Exception as exc:  # one bench failing leaves the others' figures
            traceback.print_exc()
            figures[name] = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.flush()
    rows = goal_rows(figures)
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
        "settings": {"quick": args.quick, **{k: settings[k] for k in figures}},
        "figures": figures,
        "goals": rows,
    }
    args.json.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"\nfigures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
