"""The keys bm_upgrade logs in with: a key file (passphrase from an env var or a file) and/or
the SSH agent. Secrets are read here and never logged."""

from __future__ import annotations

import os
from pathlib import Path

import paramiko

from bm_upgrade.errors import AuthenticationFailed
from bm_upgrade.inventory import SshSettings


def _passphrase(settings: SshSettings, host: str) -> str | None:
    if settings.key_passphrase_env:
        value = os.environ.get(settings.key_passphrase_env)
        if value is None:
            raise AuthenticationFailed(
                host,
                f"environment variable {settings.key_passphrase_env} (named by "
                "ssh.key_passphrase_env) is not set; export it with the key's passphrase",
            )
        return value
    if settings.key_passphrase_file:
        path = Path(settings.key_passphrase_file).expanduser()
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise AuthenticationFailed(
                host,
                f"cannot read ssh.key_passphrase_file {path} ({exc.strerror}); check "
                "the path and its permissions",
            ) from None
    return None


def load_key_file(settings: SshSettings, host: str) -> paramiko.PKey | None:
    """The private key of ``ssh.key_file``, decrypted; None when no key file is set.

    Raises:
        AuthenticationFailed: missing/unreadable file, missing or wrong passphrase.
    """
    if not settings.key_file:
        return None
    path = Path(settings.key_file).expanduser()
    try:
        passphrase = _passphrase(settings, host)
        # paramiko hands the passphrase to cryptography, which wants bytes.
        secret = passphrase.encode() if passphrase is not None else None
        return paramiko.PKey.from_path(path, secret)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise AuthenticationFailed(
            host, f"ssh.key_file {path} does not exist; fix the path in the inventory"
        ) from None
    except (paramiko.PasswordRequiredException, TypeError):
        # cryptography raises TypeError for an encrypted key loaded without a passphrase.
        raise AuthenticationFailed(
            host,
            f"ssh.key_file {path} is encrypted; set ssh.key_passphrase_env or "
            "ssh.key_passphrase_file to its passphrase",
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise AuthenticationFailed(
            host,
            f"cannot load ssh.key_file {path} ({exc}); check that it is an OpenSSH "
            "private key and that the passphrase is right",
        ) from None


def candidate_keys(
    settings: SshSettings, host: str
) -> tuple[list[paramiko.PKey], paramiko.Agent | None]:
    """Every key to offer, key file first, then the agent's (when ``use_agent``).

    Returns the keys and the agent connection they sign through (close it after logging in).
    """
    keys: list[paramiko.PKey] = []
    key = load_key_file(settings, host)
    if key is not None:
        keys.append(key)
    agent = None
    if settings.use_agent and os.environ.get("SSH_AUTH_SOCK"):
        agent = paramiko.Agent()
        keys.extend(agent.get_keys())
    return keys, agent
