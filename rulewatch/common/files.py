"""A file or folder rulewatch could not use, said in one line an operator can act on."""

from __future__ import annotations

import errno
import os

#: What an operator does about a file or folder rulewatch could not write, by errno.
FILE_FIXES = {
    errno.EEXIST: "a file stands where rulewatch keeps a folder: move it away, "
    "the next run makes the folder",
    errno.ENOTDIR: "a file stands where rulewatch keeps a folder: move it away, "
    "the next run makes the folder",
    errno.EISDIR: "a folder stands where rulewatch writes a file: move it away",
    errno.EACCES: "the user rulewatch runs as needs write access there",
    errno.EPERM: "the user rulewatch runs as needs write access there",
    errno.ENOSPC: "free some space on that disk, then run again",
    errno.EDQUOT: "free some space on that disk, then run again",
    errno.EROFS: "that file system is mounted read-only",
}


def file_error(exc: OSError) -> str:
    """One line for a file or folder rulewatch could not use: the path, the system's
    reason and what to do (a run that failed so is whole again once re-run)."""
    path = _path_text(exc.filename)
    if exc.filename2 is not None:
        path += f" -> {_path_text(exc.filename2)}"
    reason = exc.strerror or type(exc).__name__
    fix = FILE_FIXES.get(exc.errno or 0)
    return f"cannot use {path}: {reason}" + (f" ({fix})" if fix else "")


def _path_text(name: object) -> str:
    return os.fsdecode(name) if isinstance(name, str | bytes | os.PathLike) else str(name)
