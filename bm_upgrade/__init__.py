"""bm_upgrade: rolling maintenance upgrades of BigMemory Max 4.2 clusters, as a Dagster code
location."""

__version__ = "0.1.0"
