"""How the tool works on a cluster: SSH access, the maintenance window, timeouts and the
operator's policy (run config can override the policy)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from bm_upgrade.cron import parse_cron
from bm_upgrade.inventory.nodes import FrozenModel, valid_host


class JumpHost(FrozenModel):
    """A bastion the SSH connections go through."""

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str | None = None

    @field_validator("host")
    @classmethod
    def _valid_host(cls, host: str) -> str:
        return valid_host(host)


class SshSettings(FrozenModel):
    """How bm_upgrade reaches every host. Secrets are referenced, never written here."""

    user: str = Field(min_length=1, description="Login user on every host.")
    port: int = Field(default=22, ge=1, le=65535)
    key_file: str | None = Field(
        default=None, description="Path to the private key; omit to use the SSH agent."
    )
    key_passphrase_env: str | None = Field(
        default=None, description="Name of an environment variable holding the key passphrase."
    )
    key_passphrase_file: str | None = Field(
        default=None, description="Path to a file holding the key passphrase."
    )
    use_agent: bool = Field(default=True, description="Also offer keys from the SSH agent.")
    known_hosts: str = Field(
        default="~/.ssh/known_hosts",
        description="known_hosts file every host key is checked against (required: a host "
        "key is always checked; record new hosts with `bm-upgrade trust-hosts INVENTORY`).",
    )
    accept_unknown_host_keys: bool = Field(
        default=False,
        description="Let connections to hosts not in known_hosts go on unchecked, with a "
        "warning each time, recording nothing (labs only; record keys with `bm-upgrade "
        "trust-hosts INVENTORY`). Off unless set explicitly.",
    )
    jump_host: JumpHost | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    command_timeout_s: float = Field(default=120.0, gt=0)
    keepalive_s: float = Field(default=15.0, ge=0)

    @field_validator("known_hosts", mode="before")
    @classmethod
    def _known_hosts_named(cls, known_hosts: object) -> object:
        if known_hosts is None or (isinstance(known_hosts, str) and not known_hosts.strip()):
            raise ValueError(
                "known_hosts must name a known_hosts file: without one no host key would be "
                "checked; set it (default ~/.ssh/known_hosts) and, for hosts contacted for "
                "the first time, record their keys with `bm-upgrade trust-hosts INVENTORY`"
            )
        return known_hosts

    @model_validator(mode="after")
    def _one_passphrase_source(self) -> SshSettings:
        if self.key_passphrase_env and self.key_passphrase_file:
            raise ValueError("set only one of key_passphrase_env and key_passphrase_file")
        if not self.key_file and not self.use_agent:
            raise ValueError("set key_file, or use_agent: true, so there is a key to log in with")
        return self


class Window(FrozenModel):
    """The maintenance window disruptive steps must finish inside."""

    enabled: bool = True
    cron: str = Field(default="0 2 * * 0", description="When the window opens (5-field cron).")
    timezone: str = "UTC"
    length_minutes: int = Field(default=240, gt=0)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        # The schedule is built from it when the code location loads: a cron Dagster refuses
        # would take the cluster's job out of the location, so refuse it here, by name.
        try:
            parse_cron(cron)
        except ValueError as exc:
            raise ValueError(
                f"{cron!r}: {exc}; fix it (minute hour day-of-month month "
                "day-of-week), or remove window.cron for the default"
            ) from None
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin or UTC"
            ) from exc
        return timezone


class Timeouts(FrozenModel):
    """How long each wait may take, in seconds."""

    stop_s: float = Field(default=120, gt=0)
    start_s: float = Field(default=300, gt=0)
    sync_s: float = Field(default=1800, gt=0)
    failover_s: float = Field(default=120, gt=0)
    client_s: float = Field(default=300, gt=0)
    orchestrator_s: float = Field(default=600, gt=0)
    approval_s: float = Field(
        default=3600,
        gt=0,
        description="How long a run with a canary waits at its approval gate for an "
        "operator's decision; then it ends safely (the canary upgraded, nothing else touched).",
    )


class Policy(FrozenModel):
    """Choices the operator makes once per cluster; run config can override them."""

    failback: bool = False
    delete_dirty_backups: bool = False
    keep_previous_kit: bool = True
    client_batch_size: int = Field(default=1, ge=1)
    parallel_stripes: int = Field(default=1, ge=1)
    allow_downtime: bool = False
    accept_data_loss: bool = False
    continue_on_failure: bool = Field(
        default=False,
        description="After a step of a run fails, let other stripes still start disruptive "
        "work (stopping servers, clients, orchestrators). Off: once anything failed, every "
        "later disruptive step ends safely, naming the failure (docs/safety.md rule 12).",
    )
    backup_before_upgrade: bool | None = Field(
        default=None,
        description="Back up each stripe's data with the product's Database Backup Utility "
        "(backup-data.sh) on its active before the stripe's first server stops. Unset: on "
        'for a persistent cluster (<restartable enabled="true"/> in the tc-config as read), '
        "off otherwise; true on a cluster that is not persistent is refused (the utility "
        "needs restartable mode).",
    )
    canary: str | None = Field(
        default=None,
        description="A stripe, as region/stripe (east/stripe1), upgraded first: the run then "
        "waits at its approval gate (approve_canary) until an operator approves or rejects, "
        "or timeouts.approval_s passes; every other stripe waits for the approval. "
        "Unset: no canary, no gate.",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts)
