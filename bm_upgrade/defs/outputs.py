"""Op outputs kept in the run's own event log, so every run worker can read them.

Dagster's default IO manager pickles each output under the first worker's ``DAGSTER_HOME``;
a re-execution from failure that starts on another machine (another run pod, another
host of the daemon) finds none of them there. :class:`RunEventsIOManager` writes each output
as JSON into the metadata of the step's ``HANDLED_OUTPUT`` event instead, and reads it back
from the event log of the run that produced it (for a re-execution, the parent run, or an
earlier ancestor), through the instance: the same on SQLite and on PostgreSQL, with no
storage beside the instance's own. Why this and not a shared folder: docs/architecture.md,
"Op outputs".

Values are typed by the op's declared output type and converted by pydantic (dataclasses,
pydantic models, datetimes, lists and dicts of those): the upgrade job's outputs are the
run's settings, the kit's cache path, where each host staged the kit, and one op's step
records, each at most a few kilobytes. An output of another kind fails the step naming it.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import dagster as dg
from dagster._core.events import HandledOutputData
from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError

OUTPUT_KEY = "output (JSON)"
"""Metadata key of the ``HANDLED_OUTPUT`` event that holds an op's output, as JSON."""


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def _declared_type(context: dg.OutputContext) -> Any:
    """The Python type the op declares for this output (``Any`` when it declares none)."""
    dagster_type = context.dagster_type
    return getattr(dagster_type, "typing_type", Any) if dagster_type is not None else Any


def encode(value: Any, kind: Any) -> Any:
    """``value`` of the declared type ``kind`` as JSON-able data."""
    return _adapter(kind).dump_python(value, mode="json")


def decode(data: Any, kind: Any) -> Any:
    """Data written by :func:`encode` as a value of ``kind`` again."""
    return _adapter(kind).validate_python(data)


class RunEventsIOManager(dg.ConfigurableIOManager):
    """Outputs as JSON in the run's event log; inputs read from the producing run's events."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        kind = _declared_type(context)
        try:
            data = encode(obj, kind)
        except (PydanticSchemaGenerationError, ValueError, TypeError) as exc:
            raise dg.Failure(
                description=f"step {context.step_key}: its output {context.name} "
                f"({type(obj).__name__}) cannot be kept as JSON in the run's events ({exc}); "
                "this is a bug of bm_upgrade's op, report it"
            ) from exc
        # Wrapped: a JSON metadata value is an object or a list, an output may be a string.
        context.add_output_metadata({OUTPUT_KEY: dg.MetadataValue.json({"value": data})})

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        assert upstream is not None  # every input of the upgrade job comes from an op
        run_id, step, name = upstream.run_id, upstream.step_key, upstream.name
        data = stored_output(context.instance, run_id, step, name)
        if data is None:
            raise dg.Failure(
                description=f"output {name} of step {step} is not in the events of run "
                f"{run_id} (a run made by a bm_upgrade that kept outputs on the worker's "
                "disk, or whose step never finished): start a new run of the job instead "
                "of re-executing this one"
            )
        try:
            return decode(data.get("value"), _declared_type(upstream))
        except ValidationError as exc:
            raise dg.Failure(
                description=f"output {name} of step {step} in run {run_id} no longer fits "
                f"what this bm_upgrade reads ({exc.error_count()} problems, first: "
                f"{exc.errors()[0]['msg']}): start a new run of the job instead of "
                "re-executing this one"
            ) from exc


def stored_output(
    instance: dg.DagsterInstance, run_id: str, step: str, name: str
) -> dict[str, Any] | None:
    """What run ``run_id``'s events keep of output ``name`` of ``step`` (``{"value": JSON}``),
    or None; the last one, should the step have handled it more than once."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.HANDLED_OUTPUT
    ).records
    found: dict[str, Any] | None = None
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.step_key != step:
            continue
        handled = event.event_specific_data
        if not isinstance(handled, HandledOutputData) or handled.output_name != name:
            continue
        value = handled.metadata.get(OUTPUT_KEY)
        if isinstance(value, dg.JsonMetadataValue) and isinstance(value.data, dict):
            found = dict(value.data)
    return found


def output_size(value: Any, kind: Any) -> int:
    """Bytes of ``value``'s JSON as it is kept in the event log (for tests and the docs)."""
    return len(json.dumps(encode(value, kind), separators=(",", ":")))
