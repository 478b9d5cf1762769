"""The errors a user can act on, and how a command line reports them.

Every problem the user can fix (a bad config, corpus, audio file, cache or run directory)
raises a subclass of `UserError` whose message names the file or setting and says what to
do. Command lines print that one line and exit 2; a traceback only helps the developers, so
it is shown only with `JAXSER_DEBUG=1`.
"""
from __future__ import annotations

import os
import sys
from typing import Callable


class UserError(Exception):
    """A problem the user can fix; the message says what and where, and what to do."""


class CacheError(UserError, ValueError):
    """An embedding-cache entry that cannot be used and cannot be healed automatically."""


class RunDirError(UserError, ValueError):
    """A run directory that does not belong to this study or is damaged beyond healing."""


def debug() -> bool:
    return os.environ.get("JAXSER_DEBUG", "") not in ("", "0")


def report(main: Callable[..., int], argv=None) -> int:
    """Run a command line's `main(argv)`: a UserError becomes `error: ...` on stderr and exit 2
    (the traceback too with JAXSER_DEBUG=1)."""
    try:
        return int(main(argv) or 0)
    except UserError as e:
        if debug():
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
