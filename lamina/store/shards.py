"""Shards: independent safetensors files of activations, each with a JSON sidecar holding its checksum.

A shard is written to a temporary name, flushed to disk and renamed; its sidecar is written the same way
afterwards. A shard counts as complete only when its sidecar exists, so a run killed at any point leaves
nothing that a resume would trust. Shard i always holds the same windows, so a resume redoes exactly the
missing shards: no row is lost or duplicated. Workers can fill different shards of one store in parallel.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from lamina.errors import InputError


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


def complete_shards(folder: Path) -> dict[int, dict]:
    """Index -> sidecar of every shard whose sidecar exists."""
    done = {}
    for side in sorted(folder.glob("shard-*.json")):
        info = json.loads(side.read_text())
        done[info["index"]] = info
    return done


def remove_partial(folder: Path) -> None:
    """Delete temporary files and shards without a sidecar (left by a killed or interrupted run)."""
    for tmp in folder.glob("*.tmp*"):
        tmp.unlink(missing_ok=True)
    for shard in folder.glob("shard-*.safetensors"):
        if not shard.with_suffix(".json").exists():
            shard.unlink(missing_ok=True)


def _replace_synced(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def write_shard(folder: Path, index: int, tensors: dict[str, torch.Tensor], info: dict) -> dict:
    """Write one shard and then its sidecar; on any failure nothing of this shard remains."""
    path, side = shard_path(folder, index), sidecar_path(folder, index)
    tmp, side_tmp = path.with_suffix(".tmp"), side.with_suffix(".tmp")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        _replace_synced(tmp, path)
        info = {**info, "index": index, "sha256": sha256_file(path), "bytes": path.stat().st_size}
        side_tmp.write_text(json.dumps(info, indent=1))
        _replace_synced(side_tmp, side)
        return info
    except BaseException as err:
        for p in (tmp, side_tmp, path, side):
            p.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise InputError(f"disk full while writing shard {index} in {folder}; shards already written are "
                             "kept: free space and rerun with --resume") from None
        raise


def check_shards(folder: Path) -> list[str]:
    """Problems found: a missing shard file, a wrong size or checksum, or an orphan file."""
    problems = []
    for index, info in complete_shards(folder).items():
        path = shard_path(folder, index)
        if not path.exists():
            problems.append(f"{path.name}: missing (its sidecar exists)")
        elif path.stat().st_size != info["bytes"]:
            problems.append(f"{path.name}: {path.stat().st_size} bytes, expected {info['bytes']}")
        elif sha256_file(path) != info["sha256"]:
            problems.append(f"{path.name}: checksum mismatch (corrupted)")
    for shard in folder.glob("shard-*.safetensors"):
        if not shard.with_suffix(".json").exists():
            problems.append(f"{shard.name}: no sidecar (incomplete write); --resume removes and redoes it")
    return problems
