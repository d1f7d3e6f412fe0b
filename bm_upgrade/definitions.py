"""The Dagster code location: `Definitions` for every cluster inventory.

This is the only module besides `bm_upgrade/defs/` that imports dagster. The upgrade job per
inventory file (`upgrade_<cluster>`), its sensors and schedules arrive with the upgrade job;
until then the code location loads with no jobs, so `workspace.yaml` and `dagster dev` work.
"""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions()
