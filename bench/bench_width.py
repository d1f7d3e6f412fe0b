"""Width: how an upgrade's wall time grows with the number of stripes upgraded side by side (a
figure, not a test)::

    .venv/bin/python bench/bench_width.py [--regions 4] [--stripes 4]

A wide topology (``--regions`` regions of ``--stripes`` stripes, one mirror each, one client
per region writing to its region's stripes, no WAN) is upgraded with ``parallel_stripes``
equal to its stripe count, and a narrow one (two regions of one stripe, the same per-region
shape) with ``parallel_stripes: 2``; the issue's goal is wall(wide) / wall(narrow) <= 1.5 with
no acknowledged write lost (``sandbox verify`` after the wide run). Both use the upgrade
benchmark's timings (bench/upgrade.yaml), so the critical path of the two is the same: one
stripe's mirror, failover and old active (their bound is equal).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from bench_upgrade import HERE, upgrade_run


def topology(regions: int, stripes: int) -> dict[str, Any]:
    timing = yaml.safe_load((HERE / "upgrade.yaml").read_text())["timing"]
    return {
        "name": f"width{regions * stripes}",
        "version": "4.2.0",
        "kits": ["4.2.0", "4.2.1"],
        "persistent": True,
        "regions": [
            {"name": f"r{i + 1}", "stripes": stripes, "mirrors": 1, "clients": 1}
            for i in range(regions)
        ],
        "timing": timing,
    }


def measure(regions: int = 4, stripes: int = 4) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bm-upgrade-bench-width-"))
    try:
        results: dict[str, Any] = {}
        for name, shape in (("narrow", (2, 1)), ("wide", (regions, stripes))):
            count = shape[0] * shape[1]
            path = folder / f"{name}.yaml"
            path.write_text(yaml.safe_dump(topology(*shape), sort_keys=False), encoding="utf-8")
            results[name] = upgrade_run(
                path,
                parallel=count,
                failback=False,
                runs=1,
                label=f"width: {shape[0]} regions x {shape[1]} stripes, parallel_stripes={count}",
            )
        wide, narrow = results["wide"], results["narrow"]
        if "wall_s" in wide and "wall_s" in narrow:
            results["stripes"] = regions * stripes
            results["ratio"] = round(wide["wall_s"] / narrow["wall_s"], 3)
            results["lost"] = wide["lost"]
            print(
                f"width: wall {wide['wall_s']:.1f} s for {regions * stripes} stripes side by "
                f"side / {narrow['wall_s']:.1f} s for 2 = {results['ratio']:.2f} (goal 1.5); "
                f"bound {wide['bound_s']:.1f} s for both; lost writes {wide['lost']}"
            )
        return results
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--stripes", type=int, default=4, help="stripes per region")
    args = parser.parse_args()
    measure(args.regions, args.stripes)


if __name__ == "__main__":
    main()
