"""Errors that the CLI turns into one clear line and a non-zero exit.

Core code raises these (never prints); `piti_cli.cli.main.run` catches them.
A message names the file and the problem, in one line, no traceback.
"""


class PitiError(Exception):
    """Base class: a user-facing error with a one-line message."""

    exit_code = 1


class InputError(PitiError):
    """A file or option given by the user is unreadable or malformed."""


class CheckpointError(PitiError):
    """A checkpoint cannot be read, or does not match any known layout."""


class OfflineError(PitiError):
    """Something had to be downloaded and the network is unreachable."""
