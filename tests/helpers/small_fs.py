"""Real small file systems for fault tests: a tmpfs of a given size (to fill) that can be
remounted read-only or larger. Mounting needs root (CAP_SYS_ADMIN); where it is not
permitted the tests that need it skip, naming why, and the injected-error tests still run."""
from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "256k") mounted at `path` for the block; skips the test when
    this machine does not let the test mount one."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    except FileNotFoundError:
        pytest.skip("no mount command here: cannot make a small real file system")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    """Change a mounted tmpfs's options: "ro", "rw", "size=4m"."""
    r = _mount("-o", f"remount,{options}", str(path))
    assert r.returncode == 0, r.stderr
