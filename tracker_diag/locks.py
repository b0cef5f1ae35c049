"""Exclusive, non-blocking locks (fcntl): two sweeps, or two ``label --write`` on the same
store and experiments, never write at once. The lock dies with its process (kill -9 too)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from tracker_diag.errors import BusyError
from tracker_diag.settings import cache_dir


def lock_dir() -> Path:
    """``$XDG_CACHE_HOME/tracker-diag/locks`` (``~/.cache`` by default)."""
    return cache_dir() / "locks"


def path_for(identity: str) -> Path:
    """The lock file of a store/project identity (a hash: no URI is written to disk)."""
    return lock_dir() / f"{hashlib.sha256(identity.encode()).hexdigest()[:20]}.lock"


def labelling(source: str, where: str):
    """The write lock of one tracker scope (``label --write`` and a writing sweep take the same
    one): two writers on one machine never write the same runs."""
    return exclusive(path_for(f"{source}:{where}"), f"another tracker-diag --write is labelling {where}")


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold ``path`` locked; BusyError naming ``what`` and the holder's pid if taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise BusyError(f"{what} (lock held by {holder}, {path}); try again when it ends") from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
