"""Chunked reads of a store: consecutive rows a chunk at a time, memory-mapped, in constant memory.

`ActivationStore.read` returns a whole site; the analyses that stream a store (`--store`, `lamina index`,
`lamina browse`) read it here instead: `chunks` walks the rows in corpus order (shard by shard, `rows` at a
time, optionally a few neuron columns only), `gather` fetches (row, neuron) values chunk by chunk, and
`find_rows` turns row ids (doc << 24 | position) into global row numbers without holding the whole table.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from safetensors import safe_open

from lamina.errors import InputError, SiteError
from lamina.store.shards import shard_path

CHUNK_ROWS = 8192  # rows per read: 8192 x 3072 float16 = 48 MiB


def check_sites(store, sites) -> None:
    """One line naming the sites a store holds when any of `sites` is not among them."""
    missing = [s for s in sites if s not in store.sites]
    if missing:
        raise SiteError(f"{store.folder} does not hold {', '.join(missing)}; it holds {', '.join(store.sites)}")


def shard_spans(store) -> list[tuple[int, int, int]]:
    """(shard index, first global row, rows) of every complete shard, in row order; each shard verified
    (checksum and header, once per process: `ActivationStore.verify`) before its rows are trusted."""
    spans, start = [], 0
    for index in sorted(store.shards):
        store.verify(index)
        n = store.shards[index]["n_rows"]
        spans.append((index, start, n))
        start += n
    if not spans:
        raise InputError(f"{store.folder} has no complete shard yet")
    return spans


def width(store, site: str) -> int:
    """Values per row of one stored site (from a shard header; nothing is read)."""
    check_sites(store, [site])
    shard_spans(store)
    return store.width(site)


def chunks(store, keys, neurons=None, rows: int = CHUNK_ROWS, shards=None) -> Iterator[tuple[int, dict]]:
    """(first global row, {key: tensor [n, ...]}) over consecutive row ranges of every (or the given) shard.

    `keys` are sites and/or "token_id", "row_id"; `neurons` (a list for every site, or {site: list}) reads
    only those columns."""
    check_sites(store, [k for k in keys if k not in ("token_id", "row_id")])
    if neurons is not None and not isinstance(neurons, dict):
        neurons = {k: neurons for k in keys}
    neurons = {k: v for k, v in (neurons or {}).items() if k not in ("token_id", "row_id")}
    for index, start, n in shard_spans(store):
        if shards is not None and index not in shards:
            continue
        with safe_open(str(shard_path(store.folder, index)), framework="pt") as f:
            slices = {k: f.get_slice(k) for k in keys}
            for a in range(0, n, rows):
                b = min(n, a + rows)
                yield start + a, {k: s[a:b] if k not in neurons else s[a:b, list(neurons[k])]
                                  for k, s in slices.items()}


def gather(store, key: str, rows: np.ndarray, columns: np.ndarray | None = None,
           chunk: int = CHUNK_ROWS) -> torch.Tensor:
    """Values at global `rows` (any order, repeats allowed): [m, width], or [m] at (rows[i], columns[i]).

    Only the chunks holding a requested row are read, one at a time."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    out = None
    for index, start, n in shard_spans(store):
        lo, hi = np.searchsorted(sorted_rows, [start, start + n])
        if lo == hi:
            continue
        with safe_open(str(shard_path(store.folder, index)), framework="pt") as f:
            s = f.get_slice(key)
            i = lo
            while i < hi:
                a = int(sorted_rows[i]) - start                       # chunk starting at the next wanted row
                j = int(np.searchsorted(sorted_rows, start + min(n, a + chunk), side="left"))
                j = min(j, hi)
                block = s[a:min(n, a + chunk)]                        # [<=chunk, width]
                local = torch.as_tensor(sorted_rows[i:j] - start - a)
                picked = block[local] if columns is None else block[local, torch.as_tensor(columns[order[i:j]])]
                if out is None:
                    out = torch.empty((len(rows), *picked.shape[1:]), dtype=picked.dtype)
                out[torch.as_tensor(order[i:j])] = picked
                i = j
    if out is None:
        raise InputError(f"rows {rows[:3].tolist()}... are not in {store.folder}")
    return out


def row_ids(store) -> np.ndarray:
    """The row id (doc << 24 | position) of every stored row [n_rows] int64 (8 bytes a row)."""
    return np.concatenate([part["row_id"].numpy() for _, part in chunks(store, ["row_id"], rows=1 << 20)])


def find_rows(store, wanted: np.ndarray) -> np.ndarray:
    """Global row numbers of row ids `wanted` (-1 where not stored), reading row ids shard by shard.

    Row ids increase along the store (documents in order, positions increasing), so each shard's ids are
    searched with one searchsorted."""
    wanted = np.asarray(wanted, dtype=np.int64)
    found = np.full(len(wanted), -1, dtype=np.int64)
    for start, part in chunks(store, ["row_id"], rows=1 << 20):
        ids = part["row_id"].numpy()
        pos = np.searchsorted(ids, wanted).clip(0, len(ids) - 1)
        hit = ids[pos] == wanted
        found[hit] = start + pos[hit]
    return found
