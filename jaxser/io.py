"""Crash-safe file writes and the cache location: the only module that renames files or folders into place.

A file that something reads back later (embedding cache, run directory) is written to a
temporary file beside its target, flushed to disk, then renamed over it, so a reader sees the
old file or the new one, never half of one. Temporary files are created private (0600); the
finished file gets the mode a plain `open()` would give it (0666 minus the umask), so shared
caches and run directories stay readable by collaborators.

A folder (a generated corpus, a downloaded model) is built in a hidden sibling named after the
building process (`temp_sibling`) and published with `publish_dir`, which keeps a complete
folder a concurrent writer put there first.

Faults: a system error while writing (full disk, read-only folder, quota, permissions, too
many open files) removes the temporary file and raises `jaxser.errors.StorageError` naming the
target; an interrupt removes it too. A temporary file's name carries its writer's pid and host
(`.<name>.<pid>@<host>.<random>.tmp`), so one left by a killed process is recognised and swept
(`sweep_temps`). `exclusive_lock` is the one lock: a folder's single writer, named in the lock
file, released by the system when its holder dies (even by kill -9).
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from jaxser.errors import StorageError


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


_live_temps: set[str] = set()  # this process's temporary files being written
_live_lock = threading.Lock()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp)` to fill a temporary file beside `path`, then rename it to `path`.

    On any error (or Ctrl-C) the temporary file is removed and `path` is untouched; a system
    error (no space, read-only, ...) is raised as a StorageError naming `path`.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_owner_tag()}.", suffix=".tmp")
        os.close(fd)
        with _live_lock:
            _live_temps.add(tmp)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        if not e.errno or isinstance(e, StorageError):
            raise
        # name the file the error is about: the target (for its temporary file too), or another
        # one (a folder that could not be made, a file `write` read)
        ours = not isinstance(e.filename, (str, os.PathLike)) or (Path(e.filename).parent == path.parent
                                      and Path(e.filename).name.startswith(f".{path.name}."))
        raise StorageError.of(e, path if ours else e.filename) from e
    except BaseException:
        _discard(tmp)
        raise
    finally:
        with _live_lock:
            _live_temps.discard(tmp)
    return path


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def remove_own_temps() -> None:
    """Remove the temporary files this process is still writing (an interrupted command's)."""
    with _live_lock:
        live = list(_live_temps)
    for tmp in live:
        try:
            _discard(tmp)
        except OSError:
            pass


def _owner_tag() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def temp_owner(path: str | os.PathLike) -> tuple[int, str] | None:
    """(pid, host) of the process that wrote the temporary file `path` (None when its name does
    not say: an older version's)."""
    m = re.search(r"\.(\d+)@([^@/]+)\.[a-z0-9_]+\.tmp$", Path(path).name)
    return (int(m.group(1)), m.group(2)) if m else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sweep_temps(folder: str | os.PathLike, *, alone: bool = False) -> list[Path]:
    """Remove the temporary files under `folder` that processes which died (kill -9, power
    loss) left: those of a dead process of this host, or, with `alone` (the caller holds the
    folder's lock, so no one else writes there), every one not this process's own."""
    host, removed = socket.gethostname(), []
    with _live_lock:
        own = set(_live_temps)
    for p in Path(folder).rglob(".*.tmp"):
        owner = temp_owner(p)
        if owner == (os.getpid(), host) or str(p) in own or not p.is_file():
            continue
        if alone or (owner is not None and owner[1] == host and not pid_alive(owner[0])):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class LockBusy(Exception):
    """The lock is held by another process; `holder` is what it wrote in the lock file."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


@contextmanager
def exclusive_lock(path: str | os.PathLike, *, on_busy: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive `flock` on the file `path` (created) for the block, writing
    `<host> pid <pid>` in it. When another process holds it, `on_busy(holder)` is called first
    (it may raise to give up, e.g. `LockBusy`), then the lock is waited for. The system releases
    a lock whose holder died, however it died, so a stale lock file never blocks anyone."""
    path = Path(path)
    try:
        f = open(path, "a+")
    except OSError as e:
        raise StorageError.of(e, path) from None
    with f:
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                if on_busy is not None:
                    on_busy(holder)
                fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            f.truncate()
            f.write(f"{socket.gethostname()} pid {os.getpid()}\n")
            f.flush()
        except OSError as e:
            raise StorageError.of(e, path) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def w(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, w)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


#: errors of the system, not of a file's content: never a sign that a file read back is damaged
SYSTEM_FAULTS = frozenset({errno.EACCES, errno.EPERM, errno.EMFILE, errno.ENFILE, errno.EIO, errno.ENOSPC,
                           errno.EDQUOT, errno.EROFS, errno.ENOMEM})


def raise_system_fault(e: BaseException, path: str | os.PathLike) -> None:
    """Re-raise a system error met while reading `path` back as a StorageError: a reader that
    treats any failure as damage (and recomputes) must not mistake a permission or
    open-file limit for a damaged file."""
    if isinstance(e, OSError) and e.errno in SYSTEM_FAULTS:
        raise StorageError.of(e, path) from e


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
