"""One writer per store: a lock file holding the owner's pid (with its process start time), host and start time.

    with StoreLock(folder):            # the whole store (lamina extract)
        ...
    with StoreLock(folder, "worker-1-of-4"):   # one worker's share (--worker 1 --workers 4)
        ...

A lock names its owner; a writer of the whole store conflicts with every other lock, a worker's lock
with the whole-store lock and with the same worker's lock. A lock left by a process that no longer runs
on this host is stale and taken over; a lock held by a live process (or by another host, which we cannot
check) refuses with one line naming the holder. Any executor (a single process, `--worker` splits, an
actor pool) takes the lock of the share it writes, so resume and checksums need nothing more.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from lamina.errors import StoreError

WHOLE = "writer"
PREFIX = ".lock-"


def lock_path(folder: Path, owner: str) -> Path:
    return Path(folder) / f"{PREFIX}{owner}.json"


def read_lock(path: Path) -> dict | None:
    """The holder recorded in a lock file, or None when the file is gone or unreadable."""
    try:
        holder = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None where /proc cannot tell.

    A pid is reused once its process is gone; the pair (pid, start) names one process for the host's uptime."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, counted after the "(comm)" field
    except (OSError, ValueError, IndexError):
        return None


def is_stale(path: Path, grace_s: float = 10.0) -> bool:
    """A lock whose process is gone from this host (dead, or its pid now names a process started later); an
    unreadable lock file older than `grace_s`."""
    holder = read_lock(path)
    if holder is None:
        try:
            return time.time() - path.stat().st_mtime > grace_s  # a writer dies between create and write
        except FileNotFoundError:
            return True
    if holder.get("host") != socket.gethostname():
        return False  # another host's process: we cannot check it
    pid = int(holder.get("pid", -1))
    if not process_alive(pid):
        return True
    recorded, now = holder.get("pid_start"), process_start(pid)
    return recorded is not None and now is not None and now != recorded  # the pid was reused


def describe(path: Path) -> str:
    holder = read_lock(path) or {}
    since = time.strftime("%H:%M:%S", time.localtime(holder["started"])) if "started" in holder else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (since {since})"


class StoreLock:
    """Context manager: hold the lock of `owner` (the whole store by default) on `folder`."""

    def __init__(self, folder: str | Path, owner: str = WHOLE):
        self.folder, self.owner = Path(folder), owner
        self.path = lock_path(self.folder, owner)
        self.held = False

    def conflicts(self) -> list[Path]:
        """Lock files of other live writers whose share overlaps ours."""
        found = []
        for path in sorted(self.folder.glob(f"{PREFIX}*.json")):
            other = path.name[len(PREFIX):-len(".json")]
            overlaps = self.owner == WHOLE or other == WHOLE or other == self.owner
            if path != self.path and overlaps and not is_stale(path):
                found.append(path)
        return found

    def acquire(self) -> StoreLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"pid": os.getpid(), "pid_start": process_start(os.getpid()),
                             "host": socket.gethostname(), "started": time.time(), "owner": self.owner})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not is_stale(self.path):
                    self._refuse(self.path)
                self._take_over()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(record)
            self.held = True
            others = self.conflicts()
            if others:
                self.release()
                self._refuse(others[0])
            return self
        self._refuse(self.path)

    def _take_over(self) -> None:
        """Remove a stale lock: renamed to a name of our own first, so two processes cannot both take it."""
        mine = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, mine)
        except FileNotFoundError:
            return
        if not is_stale(mine):  # another process took it over and locked it between our checks: give it back
            os.rename(mine, self.path)
            self._refuse(self.path)
        mine.unlink(missing_ok=True)

    def _refuse(self, path: Path):
        raise StoreError(f"{self.folder} is being written by {describe(path)}; wait for it to finish, or if that "
                         f"process is gone from its host, delete {path}")

    def release(self) -> None:
        if self.held:
            holder = read_lock(self.path)
            if holder and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
