"""Result folders written all at once: checked before any computation, filled in a temporary folder beside
the target, and moved into place at the end.

    check_output(out)              # at the start of a command: a file there? not writable? disk full?
    with atomic_output(out) as tmp:
        write_profile(result, tmp)  # every file goes to tmp
    # now `out` holds the new results; an interruption before this point left the old ones untouched

At the end the folder is replaced as a whole when it held only what this run writes (an earlier run of the
same command): no stale file of an older run stays beside the new ones. When it also holds other files
(another analysis's results, a user's folder such as `.`), the new files are moved in one by one, each by
rename, beside the others, which are never touched. `keep=True` starts the temporary folder as a copy of
the existing one (folders that several runs fill, such as the neuron pages of `maximize` and
`top-examples`). Disk full anywhere: nothing is left half-written and the error says so.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from lamina.errors import InputError, is_disk_full

MIN_FREE_BYTES = 16 * 2**20  # refuse to start with less free space than this where the results go
TMP_MARK, OLD_MARK = ".tmp-", ".old-"


def existing_ancestor(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return path


def check_output(out: str | Path, what: str = "--out") -> Path:
    """Refuse at once an output folder that cannot receive results: a file, a read-only place, a full disk."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{what} {out} is a file, not a folder; choose another {what}")
    base = existing_ancestor(out)
    if not base.is_dir():
        raise InputError(f"{what} {out} cannot be created: {base} is a file")
    try:  # a real probe: os.access says yes to root even where nothing can be created (/proc)
        probe = tempfile.mkdtemp(dir=base, prefix=".lamina-probe-")
        os.rmdir(probe)
    except OSError as err:
        if is_disk_full(err):
            raise InputError(f"disk full where {what} {out} would be written; free space or choose another "
                             "folder") from None
        raise InputError(f"{what} {out} is not writable ({err.strerror} in {base}); choose another {what}") from None
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        free = None
    if free is not None and free < MIN_FREE_BYTES:
        raise InputError(f"disk full: only {free // 2**20} MB free where {what} {out} would be written; free "
                         "space or choose another folder")
    return out


def remove_leftovers(out: Path) -> None:
    """Temporary folders of earlier runs on `out` that were killed before they could clean up."""
    from lamina.store.lock import process_alive

    for mark in (TMP_MARK, OLD_MARK):
        for old in out.parent.glob(f".{out.name}{mark}*"):
            pid = old.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_output(out: str | Path, keep: bool = False, what: str = "--out"):
    """Yield a temporary folder beside `out`; on success it replaces `out` (see module docstring)."""
    out = check_output(out, what).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    tmp = out.parent / f".{out.name}{TMP_MARK}{os.getpid()}"
    old = out.parent / f".{out.name}{OLD_MARK}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if keep and out.is_dir():
            shutil.copytree(out, tmp)
        else:
            tmp.mkdir()
        yield tmp
        new = {p.name for p in tmp.iterdir()}
        others = [p for p in out.iterdir() if p.name not in new] if out.is_dir() else []
        if others:  # files this run did not write (another analysis, the user's own): write beside them
            move_beside(tmp, out)
        else:
            if out.exists():
                os.rename(out, old)
            os.rename(tmp, out)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.rename(old, out)
        if is_disk_full(err):
            raise InputError(f"disk full while writing results to {out}; nothing was changed there: free space "
                             "and rerun") from None
        if isinstance(err, PermissionError):
            raise InputError(f"cannot write results to {out}: {err.strerror}; choose another {what}") from None
        raise
    shutil.rmtree(old, ignore_errors=True)


def move_beside(tmp: Path, out: Path) -> None:
    """Move each entry of `tmp` into `out` (each one by rename), leaving the other entries of `out` alone."""
    for entry in sorted(tmp.iterdir()):
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
    tmp.rmdir()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """One file written whole or not at all (a temporary name beside it, then renamed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):
            raise InputError(f"disk full while writing {path}; nothing was changed there: "
                             "free space and rerun") from None
        raise
    return path
