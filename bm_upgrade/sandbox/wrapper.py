"""The ForceCommand wrapper of every sandbox sshd: installing it, and the line that runs it.

The wrapper is :mod:`bm_upgrade.sandbox.cmdwrap` (the reference, run as a ``.pyc``), or the
same wrapper compiled from ``cmdwrap.c`` when a C compiler is at hand.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

CMDWRAP_SOURCE = Path(__file__).with_name("cmdwrap.py")
CMDWRAP_C_SOURCE = Path(__file__).with_name("cmdwrap.c")


def wrapper_python() -> str:
    """A python3 every login user can run (the venv's may live under a private home)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


WRAPPER_ENV = "BM_SANDBOX_CMDWRAP"
"""``python`` makes sandboxes use the Python command wrapper even where a C compiler exists."""


def c_compiler() -> str | None:
    """A C compiler to build the command wrapper with (``$CC``, cc, gcc, clang), if any."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def install_wrapper(folder: Path, python: str | None = None) -> Path:
    """Install the command wrapper into ``folder`` (readable by every user); returns what
    the ForceCommand runs (see :func:`force_command`).

    The wrapper is compiled from ``cmdwrap.c`` when a C compiler is at hand (it skips
    Python's start-up on every command, and a sandbox upgrade runs hundreds of commands;
    ``bench/bench_sandbox.py`` prints both wrappers' cost), unless
    ``BM_SANDBOX_CMDWRAP=python``. ``cmdwrap.py`` is installed either
    way, byte-compiled: it is the fallback, and the compiled wrapper hands it the rare
    dirty-backup deletions. Running the ``.pyc`` saves the compiling Python does for a
    script on every start (a main script is never cached); the ``.py`` is used if byte-compiling
    fails.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "cmdwrap.py"
    shutil.copyfile(CMDWRAP_SOURCE, source)
    source.chmod(0o644)
    compiled = folder / "cmdwrap.pyc"
    result = subprocess.run(
        [
            python or wrapper_python(),
            "-S",
            "-I",
            "-c",
            "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], "
            "doraise=True)",
            str(source),
            str(compiled),
        ],
        capture_output=True,
        check=False,
    )
    python_wrapper = compiled if result.returncode == 0 and compiled.exists() else source
    python_wrapper.chmod(0o644)
    compiler = c_compiler()
    if compiler is None or os.environ.get(WRAPPER_ENV) == "python":
        return python_wrapper
    binary = folder / "cmdwrap"
    built = subprocess.run(
        [compiler, "-O2", "-o", str(binary), str(CMDWRAP_C_SOURCE)],
        capture_output=True,
        check=False,
    )
    if built.returncode != 0 or not binary.exists():
        return python_wrapper
    binary.chmod(0o755)
    return binary


def force_command(
    wrapper: Path,
    *,
    host: str,
    scan_root: Path | None,
    journal: Path | None,
    python: str | None = None,
) -> str:
    """The ForceCommand line running the command wrapper (a shell command, quoted)."""
    python = python or wrapper_python()
    if wrapper.suffix in (".py", ".pyc"):
        args = [python, "-S", "-I", str(wrapper), "--host", host]
    else:
        fallback = wrapper.with_name("cmdwrap.pyc")
        if not fallback.exists():
            fallback = wrapper.with_name("cmdwrap.py")
        args = [str(wrapper), "--python", python, "--pyc", str(fallback), "--host", host]
    if journal is not None:
        args += ["--journal", str(journal)]
    if scan_root is not None:
        args += ["--scan-root", str(scan_root)]
    return shlex.join(args)
