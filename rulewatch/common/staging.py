"""Files replaced together: the earlier set or the new one, never a mix or a half.

Downstream report builders read the files in the report folder, operators the
checks page. Written one by one in place, a disk filling up or a killed run left
a truncated HTML or XLSX where a good one had been, or this run's HTML beside
last run's workbook. Here each file is written in a folder of its own beside
them first; once all are written they are renamed into place (each rename
atomic, on the same file system), and on an error nothing in the folder changes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: The name a staging folder starts with (hidden beside the files it replaces).
STAGE_PREFIX = ".writing-"
#: A staging folder this old was left by a killed run: the next run removes it.
STALE_SECONDS = 24 * 3600


@contextlib.contextmanager
def written_together(out_dir: Path) -> Iterator[Path]:
    """A folder to write files in (a report's, the checks page); when the block ends
    they replace the files of the same names in ``out_dir`` (made if missing). On an
    error in the block, or a folder standing where a file goes, ``out_dir`` is left as
    it was; the staging folder never stays behind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _sweep(out_dir)
    stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=out_dir))
    try:
        yield stage
        staged = sorted(stage.iterdir())
        for path in staged:  # everything that can fail, before the first file moves
            target = out_dir / path.name
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
        for path in staged:
            path.replace(out_dir / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def moved(path: Path, out_dir: Path) -> Path:
    """Where a file written in the staging folder is once in place."""
    return out_dir / path.name


def _sweep(out_dir: Path) -> None:
    """Remove staging folders a killed run left (older than :data:`STALE_SECONDS`;
    a younger one may be another run's, writing now)."""
    cutoff = time.time() - STALE_SECONDS
    for old in out_dir.glob(f"{STAGE_PREFIX}*"):
        with contextlib.suppress(OSError):
            if old.is_dir() and not old.is_symlink() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
