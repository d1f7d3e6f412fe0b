"""The lock `make setup` installs from: every dependency of pyproject.toml (test extras too)
pinned within its range with hashes, nothing of one machine in it, and the Makefile using it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^ ;\\]+)")


def pins() -> dict[str, tuple[str, list[str]]]:
    """Name -> (version, hashes) of each pinned entry of the lock."""
    out: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            out[name] = (match[2], [])
        elif (stripped := line.strip()).startswith("--hash=sha256:") and name:
            out[name][1].append(stripped.removeprefix("--hash=sha256:").rstrip(" \\"))
    return out


def test_every_dependency_is_pinned_within_its_range_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [
        Requirement(r)
        for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]
    ]
    locked = pins()
    for req in wanted:
        version, hashes = locked[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), (req, version)
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), req.name
    assert locked["dagster"][0] == locked["dagster-webserver"][0] == "1.13.27"
    # Everything `make setup` installs is hashed: the build backend and pip too.
    assert {"setuptools", "wheel", "pip"} <= locked.keys()
    assert all(hashes for _, hashes in locked.values())


def test_the_lock_names_no_index_or_path_of_one_machine() -> None:
    text = LOCK.read_text(encoding="utf-8")
    for word in ("--index-url", "--extra-index-url", "--find-links", "file:"):
        assert word not in text, word
    # No absolute path of any machine (a local wheel folder, a checkout).
    assert re.search(r"(^|[\s=@])/\w", text, re.MULTILINE) is None


def test_setup_installs_from_the_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp = re.search(r"^\$\(STAMP\):(.*?)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert stamp is not None
    assert "$(LOCK)" in stamp[1] and "pyproject.toml" in stamp[1]  # either change reinstalls
    assert "--require-hashes -r $(LOCK)" in stamp[2]
    assert "--no-deps" in stamp[2] and "'.[test]'" not in stamp[2]
    assert re.search(r"^LOCK := requirements\.lock$", makefile, re.MULTILINE)
    assert re.search(r"^lock:", makefile, re.MULTILINE)
