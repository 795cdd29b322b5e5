"""`lamina extract`: capture sites over a corpus into an activation store on disk (resumable).

corpus -> windows -> shards of `windows_per_shard` windows -> per batch: capture -> keep counted tokens
-> one safetensors file per shard (sites + token_id + row_id) -> sidecar with checksum.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from lamina.data.corpus import Document, fingerprint
from lamina.data.windows import batches, corpus_windows
from lamina.errors import InputError
from lamina.store.manifest import library_versions, write_manifest
from lamina.store.reader import ActivationStore
from lamina.store.shards import complete_shards, remove_partial, write_shard

STORAGE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
SHARD_BYTES = 128 * 2**20  # target shard size: bounds memory while a shard is built


def extract(lm, docs: list[Document], sites, out: str | Path, context: int = 128, stride: int | None = None,
            batch_size: int = 8, dtype: str = "float16", resume: bool = False, skip_first: bool = False,
            pack: bool = False, max_tokens: int | None = None, worker: int = 0, workers: int = 1,
            windows_per_shard: int | None = None, progress: bool = True) -> ActivationStore:
    """Fill (or resume) an activation store at `out`; returns it opened for reading."""
    if dtype not in STORAGE_DTYPES:
        raise InputError(f"unknown storage dtype '{dtype}'; choose one of {', '.join(STORAGE_DTYPES)}")
    if not 0 <= worker < workers:
        raise InputError(f"--worker must be in 0..{workers - 1}")
    parsed = lm.sites(sites)
    if any(s.kind == "hidden" for s in parsed):
        raise InputError("extract stores hook sites; hidden.I equals a named site (see `lamina verify`)")
    windows = corpus_windows(lm, docs, context, stride, pack, max_tokens)
    widths = lm.site_widths(parsed)
    row_bytes = sum(widths.values()) * STORAGE_DTYPES[dtype].itemsize
    per_shard = windows_per_shard or max(batch_size, (SHARD_BYTES // max(row_bytes * context, 1)) // batch_size * batch_size)
    n_shards = -(-len(windows) // per_shard)
    settings = {
        "model": lm.spec, "seed": lm.seed, "model_dtype": lm.info.get("dtype"),
        "revision": getattr(lm.model.config, "_commit_hash", None),
        "sites": [s.name for s in parsed], "context": context, "stride": stride or context,
        "skip_first": skip_first, "pack": pack, "max_tokens": max_tokens, "storage_dtype": dtype,
        "windows_per_shard": per_shard, "corpus": fingerprint(docs), **library_versions(),
    }
    folder = Path(out)
    exists = (folder / "manifest.json").exists()
    write_manifest(folder, settings, {"n_shards": n_shards, "n_windows": len(windows),
                                      "doc_ids": [d.id for d in docs]})
    if exists:
        done = complete_shards(folder)
        if not resume and len(done) < n_shards:
            raise InputError(f"{folder} already holds {len(done)} of {n_shards} shards of this store; "
                             "pass --resume to continue it")
    remove_partial(folder)
    done = complete_shards(folder)
    todo = [i for i in range(n_shards) if i % workers == worker and i not in done]
    pad = lm.tokenizer.pad_token_id
    for index in tqdm(todo, desc=f"extract -> {folder.name}", unit="shard", disable=not progress):
        chunk = windows[index * per_shard:(index + 1) * per_shard]
        # One buffer per site, sized for the shard and filled in place: no list of batch pieces to
        # concatenate (a second copy), and the same large allocation every shard, so memory stays flat.
        capacity = sum(len(w.ids) for w in chunk)
        tensors = {s.name: torch.empty(capacity, widths[s.name], dtype=STORAGE_DTYPES[dtype]) for s in parsed}
        tensors["token_id"] = torch.empty(capacity, dtype=torch.long)
        tensors["row_id"] = torch.empty(capacity, dtype=torch.long)
        n = 0
        for batch in batches(chunk, batch_size, pad, skip_first):
            acts = lm.capture(lm.inputs(batch.input_ids, batch.attention_mask), parsed)
            rows = int(batch.count.sum())
            for s in parsed:
                tensors[s.name][n:n + rows] = acts[s.name][batch.count].flatten(1)
            tensors["token_id"][n:n + rows] = batch.input_ids[batch.count]
            tensors["row_id"][n:n + rows] = batch.row_ids[batch.count]
            n += rows
        tensors = {k: v[:n] for k, v in tensors.items()}  # leading rows of a contiguous tensor: contiguous
        write_shard(folder, index, tensors, {"windows": [index * per_shard, index * per_shard + len(chunk)],
                                             "n_rows": n})
    return ActivationStore(folder)
