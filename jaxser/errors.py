"""The errors a user can act on, and how a command line reports them.

Every problem the user can fix (a bad config, corpus, audio file, cache or run directory)
raises a subclass of `UserError` whose message names the file or setting and says what to
do. Command lines print that one line and exit 2; a traceback only helps the developers, so
it is shown only with `JAXSER_DEBUG=1`. A system error on a file (full disk, read-only
folder, no permission, quota, too many open files) is such a problem too (`StorageError`).
Ctrl-C and SIGTERM end a command with one line and exit 130 / 143: every file jaxser writes
is renamed into place only when complete, so re-running the same command resumes.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
from typing import Callable, Iterator


class UserError(Exception):
    """A problem the user can fix; the message says what and where, and what to do."""


class CacheError(UserError, ValueError):
    """An embedding-cache entry that cannot be used and cannot be healed automatically."""


class RunDirError(UserError, ValueError):
    """A run directory that does not belong to this study or is damaged beyond healing."""


class StorageError(UserError, OSError):
    """A system error on a file jaxser reads or writes: the path, the cause, and what to do.
    Still an OSError (with the errno), so code that handles OSError keeps handling it."""

    def __init__(self, message: str, path: str | None = None, errno_: int | None = None):
        super().__init__(message)
        self.filename, self.errno = path, errno_

    def __str__(self) -> str:
        return str(self.args[0])

    @classmethod
    def of(cls, e: OSError, path: str | os.PathLike | None = None) -> "StorageError":
        if isinstance(e, StorageError):
            return e
        path = str(path if path is not None else (e.filename or ""))
        cause = os.strerror(e.errno) if e.errno else (e.strerror or str(e))
        advice = _ADVICE.get(e.errno, "")
        return cls(f"{path + ': ' if path else ''}{cause.rstrip('.')}" + (f"; {advice}" if advice else ""),
                   path or None, e.errno)


_RESUME = "then re-run the same command to resume"
_SPACE = f"free space there, or give --out / --cache a folder on another file system; {_RESUME}"
_WRITABLE = f"give --out / --cache a folder you can write, or fix its permissions; {_RESUME}"
_FILES = f"raise the open-file limit (ulimit -n) or lower --workers; {_RESUME}"
#: errno -> what the user can do about it (the errors a shared machine's user meets)
_ADVICE = {errno.ENOSPC: _SPACE, errno.EDQUOT: _SPACE.replace("free space there", "free space within your quota"),
           errno.EROFS: _WRITABLE, errno.EACCES: _WRITABLE,
           errno.EPERM: _WRITABLE, errno.EMFILE: _FILES, errno.ENFILE: _FILES}


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) raised in the main thread, so the code under way unwinds and removes
    its temporary files as on Ctrl-C; `signum` gives the exit status 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


INTERRUPTED = "interrupted; re-run the same command to resume"


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """While in the block, SIGTERM (and SIGINT, unless something else handles or ignores it)
    raises `Interrupted` in the main thread instead of killing the process outright."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum, frame):
        raise Interrupted(signum)

    previous = {}
    for sig, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
        if signal.getsignal(sig) is default:
            previous[sig] = signal.signal(sig, raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def debug() -> bool:
    return os.environ.get("JAXSER_DEBUG", "") not in ("", "0")


class _DebugAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        os.environ["JAXSER_DEBUG"] = "1"  # read by `report` when an error reaches it
        setattr(namespace, self.dest, True)


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """`--debug` on a command line: the traceback of an error instead of its one line. The one
    definition every command's parser shares (`jaxser --debug run` and `jaxser run --debug` alike)."""
    parser.add_argument("--debug", action=_DebugAction, nargs=0, default=False,
                        help="show the traceback of an error (also JAXSER_DEBUG=1)")


def report(main: Callable[..., int], argv=None) -> int:
    """Run a command line's `main(argv)`: a UserError, or a system error on a file, becomes
    `error: ...` on stderr and exit 2; SIGINT / SIGTERM become `interrupted; ...` and exit 130 /
    143, with this process's temporary files removed (JAXSER_DEBUG=1: the traceback instead)."""
    try:
        with signals_interrupt():
            return int(main(argv) or 0)
    except UserError as e:
        if debug():
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        from jaxser.io import remove_own_temps

        remove_own_temps()
        if debug():
            raise
        print(INTERRUPTED, file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    except OSError as e:
        if debug() or not e.errno:
            raise
        print(f"error: {StorageError.of(e)}", file=sys.stderr)
        return 2
