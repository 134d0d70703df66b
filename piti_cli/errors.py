"""Errors that the CLI turns into one clear line and a non-zero exit.

Core code raises these (never prints); the boundary in `piti_cli.cli.main` catches them.
A message names the file or option and the problem, in one line, no traceback.
"""

from __future__ import annotations

import errno
import os
import re

# Exit codes of the boundary (besides Typer's 2 for usage errors).
EXIT_USER = 1  # bad input, bad option, unwritable output: the message says which
EXIT_BUG = 70  # EX_SOFTWARE: an unexpected exception, i.e. a bug in piti
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
BUG_REPORT = "please report it on the piti issue tracker with the output of the same command run with `piti --debug ...`"


class PitiError(Exception):
    """Base class: a user-facing error with a one-line message."""

    exit_code = EXIT_USER


class InputError(PitiError):
    """A file or option given by the user is unreadable or malformed."""


class CheckpointError(PitiError):
    """A checkpoint cannot be read, or does not match any known layout."""


class OfflineError(PitiError):
    """Something had to be downloaded and the network is unreachable."""


class Interrupted(BaseException):
    """SIGINT/SIGTERM during a run. A BaseException, so no `except Exception` swallows it;
    `finally` blocks still run (temporary files are removed, locks released)."""

    def __init__(self, signum: int, exit_code: int):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = exit_code


_OS_PROBLEMS = {
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied (not readable or not writable here)",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EEXIST: "already exists and is not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "file name too long",
}


def describe_os_error(err: OSError) -> str:
    """One line naming the file and the problem of a file-system error."""
    where = err.filename if err.filename is not None else "file system"
    if err.filename2 is not None:
        where = f"{where} -> {err.filename2}"
    own_words = err.strerror and err.errno is not None and err.strerror != os.strerror(err.errno)
    problem = (err.strerror if own_words else _OS_PROBLEMS.get(err.errno)) or err.strerror or str(err) or type(err).__name__
    return one_line(f"{where}: {problem}")


def one_line(message: str) -> str:
    """Collapse a message to one line (multi-line details joined with '; ')."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return "; ".join(parts) if parts else "(no message)"


def brief(message: str, limit: int = 160) -> str:
    """A library's message as one line of at most about `limit` characters, cut after a whole
    sentence when one ends in reach, else at a word with "…" (never mid-word, and never at the
    dot inside `torch.load`)."""
    text = one_line(message)
    if len(text) <= limit:
        return text
    ends = [m.end() for m in re.finditer(r"[.;:!?](?=\s)", text[:limit + 1])]
    if ends and ends[-1] >= limit // 3:
        return text[:ends[-1]].rstrip(".;: ")
    return text[:limit].rsplit(" ", 1)[0] + " …"
