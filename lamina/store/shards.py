"""Shards: independent safetensors files of activations, each with a JSON sidecar holding its checksum.

Integrity on read: `verify_shard` checks a shard's size and sha256 against its sidecar before its first use
in a process, and its header against the sidecar and the manifest (`header_problem`: every stored site and
the row metadata present, each with the sidecar's row count, the sites in the store's dtype, and the widths
of the first shard); the verdict is cached by (path, size, modification time), so later reads cost nothing
and a file changed since is checked again. A missing, truncated, corrupted or mismatched shard raises
`StoreError` naming it.

A shard is written to a temporary name, flushed to disk and renamed; its sidecar is written the same way
afterwards. A shard counts as complete only when its sidecar exists, so a run killed at any point leaves
nothing that a resume would trust. Shard i always holds the same windows, so a resume redoes exactly the
missing shards: no row is lost or duplicated. Workers can fill different shards of one store in parallel.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from lamina.errors import StoreError, is_disk_full

SIDECAR_KEYS = ("index", "sha256", "bytes", "n_rows")
META = ("token_id", "row_id")  # per-row metadata stored in every shard beside the sites
SAFETENSORS_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 checked in this process


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.safetensors"


def sidecar_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_sidecar(side: Path) -> dict | None:
    """A sidecar's content, or None when it is unreadable, not JSON, or lacks a field."""
    try:
        info = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict) or any(k not in info for k in SIDECAR_KEYS):
        return None
    if not (_count(info["index"]) and _count(info["n_rows"]) and _count(info["bytes"])
            and isinstance(info["sha256"], str)):
        return None
    if side.name != sidecar_path(side.parent, info["index"]).name:
        return None
    return info


def complete_shards(folder: Path) -> dict[int, dict]:
    """Index -> sidecar of every shard whose sidecar exists and is sound (see `bad_sidecars`)."""
    done = {}
    for side in sorted(folder.glob("shard-*.json")):
        info = read_sidecar(side)
        if info is not None:
            done[info["index"]] = info
    return done


def bad_sidecars(folder: Path) -> list[Path]:
    """Sidecars that are not valid JSON or lack a field: their shards count as not written."""
    return [side for side in sorted(folder.glob("shard-*.json")) if read_sidecar(side) is None]


def shard_header(path: Path) -> dict[str, tuple[str, list[int]]]:
    """{tensor name: (safetensors dtype, shape)} of a shard, from its header (no values are read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: (f.get_slice(k).get_dtype(), list(f.get_slice(k).get_shape())) for k in f.keys()}  # noqa: SIM118


def header_problem(path: Path, info: dict, expect: dict) -> str | None:
    """What in a shard's header disagrees with its sidecar's row count or the store's `expect`ed sites, dtype
    and widths ({"sites", "storage_dtype", "widths": {site: width} or None}), or None."""
    try:
        header = shard_header(path)
    except Exception as err:  # safetensors raises its own error types
        return f"{path.name}: unreadable header ({str(err).splitlines()[0][:120]})"
    n, dtype, widths = info["n_rows"], SAFETENSORS_DTYPES[expect["storage_dtype"]], expect.get("widths") or {}
    for key in (*expect["sites"], *META):
        if key not in header:
            return f"{path.name}: holds no {key}"
        kind, shape = header[key]
        if not shape or shape[0] != n:
            return f"{path.name}: {key} has {shape[0] if shape else 0} rows, its sidecar says {n}"
        if key in META:
            if kind not in ("I64", "I32") or len(shape) != 1:
                return f"{path.name}: {key} is {kind} {shape}, not one integer per row"
        elif kind != dtype:
            return f"{path.name}: {key} is stored as {kind}, the store as {dtype}"
        elif len(shape) != 2 or (key in widths and shape[1] != widths[key]):
            return f"{path.name}: {key} has shape {shape}, the store's first shard [rows, {widths.get(key)}]"
    return None


def shard_problem(folder: Path, index: int, info: dict, use_cache: bool = True, expect: dict | None = None
                  ) -> str | None:
    """What is wrong with shard `index` (missing, wrong size, checksum mismatch, a header that disagrees with
    its sidecar or `expect`: see `header_problem`), or None when it is sound."""
    path = shard_path(folder, index)
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path.name}: missing (its sidecar exists)"
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if use_cache and _verified.get(key) == info["sha256"]:
        return None
    if st.st_size != info["bytes"]:
        return f"{path.name}: {st.st_size} bytes, expected {info['bytes']} (truncated or overwritten)"
    if sha256_file(path) != info["sha256"]:
        return f"{path.name}: checksum mismatch (corrupted)"
    if expect is not None:
        problem = header_problem(path, info, expect)
        if problem is not None:
            return problem
    _verified[key] = info["sha256"]
    return None


def verify_shard(folder: Path, index: int, info: dict, expect: dict | None = None) -> None:
    """Raise `StoreError` unless shard `index` matches its sidecar (checked once per process and file state)."""
    problem = shard_problem(folder, index, info, expect=expect)
    if problem is not None:
        raise StoreError(f"{folder}/{problem}; re-extract it: lamina extract --resume with the same settings "
                         "redoes this shard")


def discard_shard(folder: Path, index: int) -> None:
    """Remove a shard and its sidecar (sidecar first, so the shard never counts as complete meanwhile)."""
    sidecar_path(folder, index).unlink(missing_ok=True)
    shard_path(folder, index).unlink(missing_ok=True)


def remove_partial(folder: Path, owned=None) -> None:
    """Delete temporary files, bad sidecars and shards without a sound sidecar (left by a killed run).

    `owned(index) -> bool` limits the cleaning to the shards this writer fills (parallel workers)."""
    def mine(path: Path) -> bool:
        try:
            return owned is None or owned(int(path.name.split(".")[0].split("-")[1]))
        except (IndexError, ValueError):
            return False

    for tmp in folder.glob("shard-*.tmp*"):
        if mine(tmp):
            tmp.unlink(missing_ok=True)
    for side in bad_sidecars(folder):
        if mine(side):
            side.unlink(missing_ok=True)
    for shard in folder.glob("shard-*.safetensors"):
        if mine(shard) and read_sidecar(shard.with_suffix(".json")) is None:
            shard.unlink(missing_ok=True)


def _replace_synced(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def write_shard(folder: Path, index: int, tensors: dict[str, torch.Tensor], info: dict) -> dict:
    """Write one shard and then its sidecar; on any failure nothing of this shard remains."""
    path, side = shard_path(folder, index), sidecar_path(folder, index)
    # Temporary names of our own: a retried shard (a Ray task re-run while a killed attempt's files remain)
    # never writes into another writer's temporary file; each rename is atomic, and the contents are equal.
    tmp, side_tmp = path.with_suffix(f".tmp{os.getpid()}"), side.with_suffix(f".tmp{os.getpid()}-json")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        _replace_synced(tmp, path)
        st = path.stat()
        info = {**info, "index": index, "sha256": sha256_file(path), "bytes": st.st_size}
        side_tmp.write_text(json.dumps(info, indent=1))
        _replace_synced(side_tmp, side)
        _verified[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = info["sha256"]
        return info
    except BaseException as err:
        for p in (tmp, side_tmp, path, side):
            p.unlink(missing_ok=True)
        if is_disk_full(err):
            raise StoreError(f"disk full while writing shard {index} in {folder}; the shards already written are "
                             "kept and checked: free space and rerun with --resume") from None
        raise


def check_shards(folder: Path, expect: dict | None = None, n_shards: int | None = None) -> list[str]:
    """Problems found: a missing shard file, a wrong size or checksum, a header that disagrees with its sidecar
    or `expect` (see `header_problem`), a shard beyond the manifest's `n_shards`, a bad sidecar, an orphan file.

    Every shard is hashed again (no cache): this is the full check behind `lamina store check`."""
    problems = []
    for index, info in complete_shards(folder).items():
        if n_shards is not None and index >= n_shards:
            problems.append(f"{sidecar_path(folder, index).name}: shard {index} is beyond the manifest's "
                            f"{n_shards} shards")
            continue
        problem = shard_problem(folder, index, info, use_cache=False, expect=expect)
        if problem is not None:
            problems.append(problem)
    for side in bad_sidecars(folder):
        problems.append(f"{side.name}: sidecar unreadable or incomplete; --resume redoes its shard")
    for shard in folder.glob("shard-*.safetensors"):
        if not shard.with_suffix(".json").exists():
            problems.append(f"{shard.name}: no sidecar (incomplete write); --resume removes and redoes it")
    return problems
