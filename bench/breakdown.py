"""Where an upgrade run's time goes, from its own event log (a bench helper).

Per Dagster step:

- ``launch_s``: from the step's first event (the multiprocess executor's STEP_WORKER_STARTING,
  written by the run worker when it asks for a process) to STEP_START (the step's process is
  up, has loaded the code location and opened the instance): Dagster's start cost;
- ``body_s``: STEP_START to STEP_SUCCESS (or STEP_FAILURE): the op's own work, waits included;
- ``finish_s``: STEP_SUCCESS to the step's last event (outputs handled, the process's last
  records): Dagster's stop cost;
- ``events``: event-log records of the step (each one write to the event storage);
- ``commands``: SSH commands its connections ran (the step's ``commands`` output metadata,
  which every step that opens a connection keeps for the evidence report), and an estimate
  of their time: that count times one command's median cost on an open connection, measured
  on the same sandbox;
- ``actions``: seconds per kind of action the step's log lines report with their duration
  (``stop X: ... [0.4 s]``, ``install X: ... [0.7 s]``, ``waited 0.1 s for ...``: the first
  word is the kind), the op body's own account of where its time went;
- ``repeats``: how many of those commands were repeats of a line the step had already run
  (a wait's probes over SSH; REST probes, the sandbox inventory's ``probe_via``, are not
  commands and do not show here).
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from dagster import DagsterInstance

START_EVENTS = ("STEP_START",)
END_EVENTS = ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED")
ACTION = re.compile(r"^([a-z][\w-]*)\b.*\[(\d+(?:\.\d+)?) s\]$")
WAITED = re.compile(r"^waited (\d+(?:\.\d+)?) s for ")


def action_of(message: str) -> tuple[str, float] | None:
    """(kind, seconds) of a log line that reports an action's duration."""
    waited = WAITED.match(message)
    if waited:
        return "waited", float(waited.group(1))
    done = ACTION.match(message)
    return (done.group(1), float(done.group(2))) if done else None


def _commands(event: Any) -> tuple[int, int]:
    """(commands, repeats) from an event's ``commands`` metadata, if it has some."""
    data = getattr(event.dagster_event, "event_specific_data", None)
    metadata = getattr(data, "metadata", None) or {}
    value = metadata.get("commands") if isinstance(metadata, dict) else None
    hosts = getattr(value, "value", None) or getattr(value, "data", None)
    if not isinstance(hosts, dict):
        return 0, 0
    count = repeats = 0
    for lines in hosts.values():
        for line in lines:
            count += int(line.get("count", 0))
            repeats += max(0, int(line.get("count", 0)) - 1)
    return count, repeats


def step_costs(inst: DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    """Each step of the run, in start order, with the figures of the module docstring."""
    steps: dict[str, dict[str, Any]] = {}
    for entry in inst.all_logs(run_id):
        key = entry.step_key
        if key is None:
            continue
        step = steps.setdefault(
            key, {"first": entry.timestamp, "last": entry.timestamp, "events": 0}
        )
        step["events"] += 1
        step["first"] = min(step["first"], entry.timestamp)
        step["last"] = max(step["last"], entry.timestamp)
        kind = entry.dagster_event.event_type_value if entry.dagster_event else None
        if kind in START_EVENTS:
            step["start"] = entry.timestamp
        elif kind in END_EVENTS:
            step["end"] = entry.timestamp
        if entry.dagster_event is None:
            found = action_of(entry.user_message)
            if found is not None:
                actions = step.setdefault("actions", {})
                actions[found[0]] = actions.get(found[0], 0.0) + found[1]
        else:
            count, repeats = _commands(entry)
            step["commands"] = step.get("commands", 0) + count
            step["repeats"] = step.get("repeats", 0) + repeats
    origin = min((s["first"] for s in steps.values()), default=0.0)
    rows = []
    for key, s in sorted(steps.items(), key=lambda kv: kv[1].get("start", kv[1]["first"])):
        start, end = s.get("start", s["first"]), s.get("end", s["last"])
        rows.append(
            {
                "step": key,
                "s": round(end - start, 3),
                "launch_s": round(start - s["first"], 3),
                "body_s": round(end - start, 3),
                "finish_s": round(s["last"] - end, 3),
                "events": s["events"],
                "commands": s.get("commands", 0),
                "repeats": s.get("repeats", 0),
                "actions": {k: round(v, 2) for k, v in sorted(s.get("actions", {}).items())},
                "from_s": round(s["first"] - origin, 3),
                "to_s": round(s["last"] - origin, 3),
            }
        )
    return rows


def print_steps(steps: list[dict[str, Any]], command_ms: float) -> None:
    print(
        f"  {'step':32s} {'s':>6s} {'bound s':>8s} {'launch':>7s} {'finish':>7s} "
        f"{'events':>6s} {'cmds':>5s} {'cmd s~':>6s}"
    )
    for step in steps:
        print(
            f"  {step['step']:32s} {step['s']:6.2f} {step.get('bound_s', 0.0):8.1f} "
            f"{step['launch_s']:7.2f} {step['finish_s']:7.2f} {step['events']:6d} "
            f"{step['commands']:5d} {step['commands'] * command_ms / 1000:6.2f}"
        )


def summary(
    steps: list[dict[str, Any]], wall: float, bound: float, command_ms: float
) -> dict[str, Any]:
    """The run's totals by kind (sums over steps; side-by-side steps overlap, so sums of a
    parallel run exceed its wall time)."""
    count = max(1, len(steps))
    covered, reach = 0.0, 0.0
    for step in sorted(steps, key=lambda s: s["from_s"]):
        covered += max(0.0, step["to_s"] - max(reach, step["from_s"]))
        reach = max(reach, step["to_s"])
    above = [max(0.0, s["s"] - s.get("bound_s", 0.0)) for s in steps]
    actions: dict[str, float] = {}
    for step in steps:
        for kind, seconds in step["actions"].items():
            actions[kind] = actions.get(kind, 0.0) + seconds
    return {
        "actions_s": {k: round(v, 2) for k, v in sorted(actions.items(), key=lambda kv: -kv[1])},
        "steps": len(steps),
        "overhead_s": round(wall - bound, 2),
        "overhead_per_step_s": round((wall - bound) / count, 3),
        "launch_s_sum": round(sum(s["launch_s"] for s in steps), 2),
        "launch_s_median": round(statistics.median(s["launch_s"] for s in steps), 3)
        if steps
        else 0.0,
        "finish_s_sum": round(sum(s["finish_s"] for s in steps), 2),
        "body_above_bound_s_sum": round(sum(above), 2),
        "between_steps_s": round(max(0.0, reach - covered), 2),
        "events": sum(s["events"] for s in steps),
        "events_per_step": round(sum(s["events"] for s in steps) / count, 1),
        "commands": sum(s["commands"] for s in steps),
        "command_repeats": sum(s["repeats"] for s in steps),
        "commands_s_estimate": round(sum(s["commands"] for s in steps) * command_ms / 1000, 2),
        "one_command_ms": round(command_ms, 1),
    }


def print_summary(figures: dict[str, Any]) -> None:
    print(
        f"  {figures['steps']} steps, overhead {figures['overhead_s']:.1f} s "
        f"({figures['overhead_per_step_s']:.2f} s per step); summed over steps: Dagster "
        f"launch {figures['launch_s_sum']:.1f} s (median {figures['launch_s_median']:.2f} s), "
        f"finish {figures['finish_s_sum']:.1f} s, no step at all "
        f"{figures['between_steps_s']:.1f} s, op bodies above their bound "
        f"{figures['body_above_bound_s_sum']:.1f} s; {figures['events']} events "
        f"({figures['events_per_step']:.0f} per step); {figures['commands']} SSH commands "
        f"({figures['command_repeats']} repeats), ~{figures['commands_s_estimate']:.1f} s at "
        f"{figures['one_command_ms']:.0f} ms each"
    )
    print(
        "  op bodies by action (summed): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in list(figures["actions_s"].items())[:8])
    )
