"""Names read from inside files (pack source ids, run records, checkpoint metadata) that become
output paths: they must stay inside the output folder.

A name is a relative path of plain parts joined by `/` (a generic pack made from nested
folders has ids like `street/p0001`): no absolute path, no empty part, no `.` or `..`, no
backslash or drive colon, no control character, at most 200 characters. Anything else is
refused with one `InputError` naming where the name came from; nothing is rewritten, so two
different names never collide into one file.
"""

from __future__ import annotations

import unicodedata

from piti_cli.errors import InputError

MAX_LENGTH = 200


def _plain_part(part: str) -> bool:
    if not part or part in (".", "..") or "\\" in part or ":" in part:
        return False
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in part)


def is_confined(name: object) -> bool:
    """True when `name`, joined to a folder, names a path inside that folder."""
    if not isinstance(name, str) or not name or len(name) > MAX_LENGTH:
        return False
    return all(_plain_part(part) for part in name.split("/"))


def confined_name(name: object, where: str) -> str:
    """`name` itself when `is_confined(name)`, else `InputError` naming `where`."""
    if not is_confined(name):
        raise InputError(f"{where}: the name {ascii(name)[:80]} would leave the output folder or cannot be a "
                         f"file name (absolute, '..', a backslash or colon, a control character, empty or "
                         f"over {MAX_LENGTH} characters)")
    return name
