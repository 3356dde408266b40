"""The data dir's modes: the dir 0700, every file Inflow keeps in it 0600, whatever existed before.

Each start tightens what is already there (a data dir made 0755 by hand, a database file created
0644 by an older version) as well as what it creates. SQLite gives its ``-wal``, ``-shm`` and
``-journal`` files the mode of the database file, so a 0600 database keeps them 0600 too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    """chmod ``path`` to ``mode`` when it is ours and looser; a path of another user is left."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) != mode and st.st_uid == os.getuid():
        path.chmod(mode)


def private_dir(path: Path) -> None:
    """Make ``path`` (and missing parents) if needed, and leave it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with 0600 if it is missing (never wider, even for a moment), and
    leave an existing one 0600."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    _tighten(path, FILE_MODE)


def private_sqlite(database: Path) -> None:
    """A SQLite database file and its sidecars 0600; its folder is made 0700 when missing (an
    existing folder may be anyone's: only the data dir itself is tightened, by the key ring)."""
    if not database.parent.exists():
        private_dir(database.parent)
    private_file(database)
    for suffix in SQLITE_SIDECARS:
        _tighten(database.with_name(database.name + suffix), FILE_MODE)
