"""A secured management port: HTTPS, a user and a password (docs/terracotta.md, "Secured
clusters").

The inventory names the user, where the password comes from (``password_env`` or
``password_file``, never the password itself) and the CA file the certificate is checked
against; checking is on unless ``verify: false`` says otherwise. The password is read only
when a probe or a script needs it (:meth:`ManagementSecurity.password`) and goes nowhere but
the request or the script's standard input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bm_upgrade.errors import SecretUnavailable

_INLINE = ("password", "pass", "secret")


class ManagementSecurity(BaseModel):
    """How the tool logs in to a secured region's management ports and scripts."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    user: str = Field(min_length=1, description="A user with the admin role (stopping servers).")
    password_env: str | None = Field(
        default=None, description="Environment variable holding the password."
    )
    password_file: str | None = Field(
        default=None, description="Local file holding the password (its first line)."
    )
    ca_file: str | None = Field(
        default=None,
        description="Local PEM file of the CA (or self-signed certificate) the management "
        "ports' certificates are checked against; omit for the system's CAs.",
    )
    verify: bool = Field(
        default=True,
        description="Check the management ports' certificates. false (labs only) skips the "
        "check, passes -k to the scripts, and every run says so.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict):
            inline = [key for key in _INLINE if key in data]
            if inline:
                raise ValueError(
                    f"{inline[0]}: a password is never written in the inventory; put it in a "
                    "file and name it with password_file, or in an environment variable "
                    "named by password_env"
                )
        return data

    @model_validator(mode="after")
    def _one_password_source(self) -> ManagementSecurity:
        if bool(self.password_env) == bool(self.password_file):
            raise ValueError(
                "set exactly one of password_env and password_file: where the management "
                "password comes from"
            )
        return self

    def source(self) -> str:
        """Where the password comes from, for a message (never the password)."""
        if self.password_env:
            return f"environment variable {self.password_env}"
        return f"file {self.password_file}"

    def password(self) -> str:
        """The password, read now from its environment variable or file.

        Raises:
            SecretUnavailable: the variable is unset or empty, or the file cannot be read or is
                empty (the message names the source, never a value).
        """
        if self.password_env:
            value = os.environ.get(self.password_env, "")
            if not value:
                raise SecretUnavailable(
                    f"management_security.password_env: the environment variable "
                    f"{self.password_env} is not set (or empty); set it to the management "
                    f"password of user {self.user}"
                )
            return value
        path = Path(str(self.password_file)).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SecretUnavailable(
                f"management_security.password_file: cannot read {path} ({exc.strerror}); "
                "check the path and that this user may read it"
            ) from None
        if not lines or not lines[0].strip():
            raise SecretUnavailable(
                f"management_security.password_file: {path} is empty; write the management "
                f"password of user {self.user} on its first line"
            )
        return lines[0].strip()
