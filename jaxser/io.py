"""Crash-safe file writes and the cache location: the only module that renames files or folders into place.

A file that something reads back later (embedding cache, run directory) is written to a
temporary file beside its target, flushed to disk, then renamed over it, so a reader sees the
old file or the new one, never half of one. Temporary files are created private (0600); the
finished file gets the mode a plain `open()` would give it (0666 minus the umask), so shared
caches and run directories stay readable by collaborators.

A folder (a generated corpus, a downloaded model) is built in a hidden sibling named after the
building process (`temp_sibling`) and published with `publish_dir`, which keeps a complete
folder a concurrent writer put there first.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    """$JAXSER_CACHE, else ~/.cache/jaxser."""
    return Path(os.environ.get("JAXSER_CACHE", Path.home() / ".cache" / "jaxser")).expanduser()


_umask_lock = threading.Lock()


def umask() -> int:
    """The process umask (read without changing it where /proc allows, else set and restored)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:
        old = os.umask(0o022)
        os.umask(old)
    return old


def file_mode() -> int:
    """The mode `open(path, "w")` would create a file with."""
    return 0o666 & ~umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp)` to fill a temporary file beside `path`, then rename it to `path`.

    On any error (or Ctrl-C) the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def w(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, w)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def set_aside(path: str | os.PathLike, suffix: str = ".bad") -> Path:
    """Rename a damaged file to `<name><suffix>` beside it: kept for inspection, out of the way
    of the readers that look for `<name>` (an older set-aside copy is replaced)."""
    path = Path(path)
    bad = path.with_name(path.name + suffix)
    os.replace(path, bad)
    return bad


def temp_sibling(target: str | os.PathLike, kind: str) -> Path:
    """A fresh hidden sibling of `target` (`.<name>.<kind>-<pid>-<random>`) to build or retire a
    folder in; the pid in the name lets a later process tell an abandoned one (`temp_sibling_owner`)."""
    target = Path(target)
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{os.urandom(4).hex()}"


def temp_sibling_owner(path: str | os.PathLike, target: str | os.PathLike) -> int | None:
    """The pid of the process that named `path` with `temp_sibling(target, ...)`, else None."""
    m = re.fullmatch(rf"\.{re.escape(Path(target).name)}\.[a-z]+-(\d+)-.*", Path(path).name)
    return int(m.group(1)) if m else None


def publish_dir(tmp: str | os.PathLike, target: str | os.PathLike,
                is_complete: Callable[[Path], bool]) -> bool:
    """Rename the finished folder `tmp` (a sibling of `target`) to `target`; True when it was published.

    A concurrent writer wins: when `target` is already complete (per `is_complete`), or becomes
    complete while the rename fails, it is kept and `tmp` discarded. An incomplete or stale
    `target` is first renamed aside (a `temp_sibling(target, "old")`) and deleted after, so a
    reader sees the old folder or the new one, never a mix. `tmp` never survives the call.
    """
    tmp, target = Path(tmp), Path(target)
    try:
        if is_complete(target):
            return False
        trash = None
        if target.exists():
            trash = temp_sibling(target, "old")
            os.replace(target, trash)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_complete(target):  # lost a race only if the winner's folder is complete
                raise
            return False
        finally:
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
