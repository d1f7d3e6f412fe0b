"""What the clients saw of an upgrade's failovers, from the sandbox's own records (a bench
helper, no Dagster).

Every client appends one ledger line per acknowledged write (``DIR/ledgers/<client>.jsonl``:
``t``, ``region``, ``stripe``), and the sandbox's journal (``DIR/journal.jsonl``) has every
server's state changes and process starts and stops. A failover of a stripe starts when its
ACTIVE stops being active (its process stops, or it leaves ACTIVE-COORDINATOR) and ends when a
server of the stripe becomes ACTIVE-COORDINATOR. Its client-seen stall is the longest gap
between two consecutive acknowledged writes of one client to that stripe that overlaps the
failover: what an application waited for a put to return.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIVE = "ACTIVE-COORDINATOR"


@dataclass(frozen=True)
class Failover:
    region: str
    stripe: str
    old: str
    new: str
    start: float
    end: float
    gap_s: float | None = None
    """Longest gap of a client's acknowledged writes to the stripe across it (None: no client
    writes to the stripe)."""

    def figures(self, election_s: float) -> dict[str, Any]:
        return {
            "stripe": f"{self.region}/{self.stripe}",
            "old_active": self.old,
            "new_active": self.new,
            "no_active_s": round(self.end - self.start, 3),
            "gap_s": None if self.gap_s is None else round(self.gap_s, 3),
            "gap_per_election": None if self.gap_s is None else round(self.gap_s / election_s, 3),
        }


def _lines(path: Path) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return found


def failovers(directory: Path, start: float, end: float) -> list[Failover]:
    """The failovers between ``start`` and ``end`` (epoch seconds), from the journal."""
    events = sorted(_lines(directory / "journal.jsonl"), key=lambda e: float(e["t"]))
    info = json.loads((directory / "sandbox.json").read_text(encoding="utf-8"))
    stripe_of = {name: (s["region"], s["stripe"]) for name, s in info["servers"].items()}
    active: dict[tuple[str, str], str] = {}
    lost_at: dict[tuple[str, str], tuple[str, float]] = {}
    found: list[Failover] = []
    for event in events:
        t, server = float(event["t"]), event.get("server")
        if server not in stripe_of or t > end:
            continue
        stripe = stripe_of[server]
        became_active = event["event"] == "server_state" and event["state"] == ACTIVE
        left = active.get(stripe) == server and (
            (event["event"] == "server_process" and event.get("action") != "start")
            or (event["event"] == "server_state" and event["state"] != ACTIVE)
        )
        if left and stripe not in lost_at:
            lost_at[stripe] = (server, t)
        if became_active:
            if stripe in lost_at and t >= start:
                old, since = lost_at[stripe]
                if old != server:
                    found.append(Failover(stripe[0], stripe[1], old, server, since, t))
            lost_at.pop(stripe, None)
            active[stripe] = server
    return found


def acks(directory: Path) -> dict[tuple[str, str, str], list[float]]:
    """(client, region, stripe) -> the times of its acknowledged writes, in order."""
    times: dict[tuple[str, str, str], list[float]] = {}
    for ledger in sorted((directory / "ledgers").glob("*.jsonl")):
        for entry in _lines(ledger):
            key = (ledger.stem, str(entry.get("region", "")), str(entry["stripe"]))
            times.setdefault(key, []).append(float(entry["t"]))
    for series in times.values():
        series.sort()
    return times


def longest_gap(series: list[float], start: float, end: float) -> tuple[float, float] | None:
    """The longest gap between consecutive times that overlaps [start, end]: (gap, its start)."""
    best: tuple[float, float] | None = None
    for before, after in itertools.pairwise(series):
        if before <= end and after >= start and (best is None or after - before > best[0]):
            best = (after - before, before)
    return best


def stalls(directory: Path, start: float, end: float, election_s: float) -> dict[str, Any]:
    """Per failover of the run [start, end], the clients' longest gap; the worst over all, and
    the worst gap of any client and stripe anywhere in the run (a client restart shows there)."""
    times = acks(directory)
    measured = []
    for f in failovers(directory, start, end):
        gaps = [
            g[0]
            for (_, region, stripe), series in times.items()
            if (region, stripe) == (f.region, f.stripe)
            and (g := longest_gap(series, f.start, f.end)) is not None
        ]
        measured.append(
            Failover(f.region, f.stripe, f.old, f.new, f.start, f.end, max(gaps, default=None))
        )
    anywhere: tuple[float, float, str] | None = None
    for (client, region, stripe), series in times.items():
        gap = longest_gap(series, start, end)
        if gap is not None and (anywhere is None or gap[0] > anywhere[0]):
            anywhere = (gap[0], gap[1] - start, f"{client} on {region}/{stripe}")
    worst = max((f.gap_s for f in measured if f.gap_s is not None), default=None)
    return {
        "election_s": election_s,
        "failovers": [f.figures(election_s) for f in measured],
        "max_gap_s": None if worst is None else round(worst, 3),
        "max_gap_per_election": None if worst is None else round(worst / election_s, 3),
        "run_max_gap_s": None if anywhere is None else round(anywhere[0], 3),
        "run_max_gap_at_s": None if anywhere is None else round(anywhere[1], 1),
        "run_max_gap_where": None if anywhere is None else anywhere[2],
    }


def print_stalls(figures: dict[str, Any]) -> None:
    rows = figures["failovers"]
    print(
        f"  client-seen stall per failover (election_s {figures['election_s']}; "
        f"{len(rows)} failovers):"
    )
    print(
        f"  {'stripe':14s} {'old -> new active':28s} {'no ACTIVE s':>11s} {'gap s':>6s} {'/el':>5s}"
    )
    for row in rows:
        gap = "-" if row["gap_s"] is None else f"{row['gap_s']:.2f}"
        ratio = "-" if row["gap_per_election"] is None else f"{row['gap_per_election']:.2f}"
        pair = f"{row['old_active']} -> {row['new_active']}"
        print(f"  {row['stripe']:14s} {pair:28s} {row['no_active_s']:11.2f} {gap:>6s} {ratio:>5s}")
    if figures["run_max_gap_s"] is not None:
        print(
            f"  longest gap anywhere in the run: {figures['run_max_gap_s']:.2f} s "
            f"({figures['run_max_gap_where']}, {figures['run_max_gap_at_s']:.1f} s into the run)"
        )
