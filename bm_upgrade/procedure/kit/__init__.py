"""The kit before any swap: fetched into a local cache, then staged with the license key on
every host that needs it, before anything is stopped.

- fetch.py: the local cache (resumed downloads, sha256-checked, URLs redacted).
- staging.py: disk room, then kit and license into each host's private staging folder, the
  staged kit's version proven once; the folders removed after a successful run.
"""

from bm_upgrade.procedure.kit.fetch import CACHE_DIR_ENV, fetch_kit, kit_file_name
from bm_upgrade.procedure.kit.staging import (
    StagedKit,
    clean_staging,
    prove_kit_version,
    stage_kit,
    staging_targets,
)

__all__ = [
    "CACHE_DIR_ENV",
    "StagedKit",
    "clean_staging",
    "fetch_kit",
    "kit_file_name",
    "prove_kit_version",
    "stage_kit",
    "staging_targets",
]
