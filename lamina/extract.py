"""`lamina extract`: capture sites over a corpus into an activation store on disk (resumable).

corpus -> windows -> shards of `windows_per_shard` windows -> per batch: capture -> keep counted tokens
-> one safetensors file per shard (sites + token_id + row_id) -> sidecar with checksum.

The shard plan is the unit of work: shard i always covers windows [i * per_shard, (i + 1) * per_shard).
Three executors fill the same plan under the same manifest and lock: this process (`fill_shards`), the
`--worker I --workers N` split (each process fills the shards i % N == I), and a Ray actor pool
(`lamina/ray_jobs.py`, which calls `write_shard_of` in each actor).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lamina import validate
from lamina.data.corpus import Document, fingerprint
from lamina.data.windows import Window, batches, corpus_windows, pad_id, read_counts
from lamina.errors import InputError, StoreError
from lamina.store.lock import WHOLE, StoreLock
from lamina.store.manifest import library_versions, write_manifest
from lamina.store.reader import ActivationStore
from lamina.store.shards import complete_shards, discard_shard, remove_partial, shard_problem, write_shard

STORAGE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
SHARD_BYTES = 128 * 2**20  # target shard size: bounds memory while a shard is built


@dataclass(frozen=True)
class ExtractSettings:
    """What an extraction computes, built by keyword (the CLI's options) and sent as it is to Ray actors.

    The store's manifest records the resolved values (site names expanded, stride and shard size filled in)."""
    sites: tuple[str, ...]
    context: int = 128
    stride: int | None = None
    batch_size: int = 8
    dtype: str = "float16"              # storage dtype: float16, bfloat16 or float32
    skip_first: bool = False
    pack: bool = False
    max_tokens: int | None = None
    windows_per_shard: int | None = None  # default: shards of about SHARD_BYTES

    def __post_init__(self):
        sites = [self.sites] if isinstance(self.sites, str) else list(self.sites)
        object.__setattr__(self, "sites", tuple(s.strip() for site in sites for s in site.split(",") if s.strip()))
        object.__setattr__(self, "batch_size", validate.integer("batch_size", self.batch_size))
        object.__setattr__(self, "max_tokens", validate.limit("max_tokens", self.max_tokens))
        if self.windows_per_shard is not None:
            object.__setattr__(self, "windows_per_shard", validate.integer("windows_per_shard", self.windows_per_shard))
        if self.dtype not in STORAGE_DTYPES:
            raise InputError(f"unknown storage dtype '{self.dtype}'; choose one of {', '.join(STORAGE_DTYPES)}")


@dataclass
class ShardPlan:
    """The fixed windows of every shard of one store, and the manifest settings that key it."""
    folder: Path
    settings: ExtractSettings
    windows: list[Window]
    widths: dict[str, int]         # values per token of each site (q/k/v: heads * d_head)
    per_shard: int
    manifest: dict                 # the manifest's settings (the store's key is hashed from them)
    extra: dict                    # the manifest's other fields: n_shards, n_windows, doc_ids, counts

    @property
    def n_shards(self) -> int:
        return self.extra["n_shards"]

    def windows_of(self, index: int) -> list[Window]:
        return self.windows[index * self.per_shard:(index + 1) * self.per_shard]


def plan_store(lm, docs: list[Document], settings: ExtractSettings, out: str | Path) -> ShardPlan:
    """Tokenize the corpus and fix the shard plan and manifest (nothing is written)."""
    s = settings
    parsed = lm.sites(list(s.sites))
    if any(site.kind == "hidden" for site in parsed):
        raise InputError("extract stores hook sites; hidden.I equals a named site (see `lamina verify`)")
    s = replace(s, sites=tuple(site.name for site in parsed))
    windows = corpus_windows(lm, docs, s.context, s.stride, s.pack, s.max_tokens)
    widths = lm.site_widths(parsed)
    row_bytes = sum(widths.values()) * STORAGE_DTYPES[s.dtype].itemsize
    per_shard = s.windows_per_shard or max(s.batch_size, (SHARD_BYTES // max(row_bytes * s.context, 1))
                                           // s.batch_size * s.batch_size)
    manifest = {
        "model": lm.spec, "seed": lm.seed, "model_dtype": lm.info.get("dtype"),
        "revision": getattr(lm.model.config, "_commit_hash", None),
        "sites": list(s.sites), "context": s.context, "stride": s.stride or s.context,
        "skip_first": s.skip_first, "pack": s.pack, "max_tokens": s.max_tokens, "storage_dtype": s.dtype,
        "windows_per_shard": per_shard, "corpus": fingerprint(docs), **library_versions(),
    }
    extra = {"n_shards": -(-len(windows) // per_shard), "n_windows": len(windows), "doc_ids": [d.id for d in docs],
             "counts": read_counts(windows, len(docs))}   # what was read; doc_ids lists the whole corpus
    return ShardPlan(Path(out), s, windows, widths, per_shard, manifest, extra)


def open_store(plan: ShardPlan, resume: bool, mine=lambda i: True) -> list[int]:
    """Write (or check) the manifest, clean what a killed run left, and return the shards still to fill.

    Call it holding the store's lock; `mine(index)` limits it to the shards this writer fills."""
    folder = plan.folder
    exists = (folder / "manifest.json").exists()
    write_manifest(folder, plan.manifest, plan.extra)
    if exists:
        done = complete_shards(folder)
        if not resume and len(done) < plan.n_shards:
            raise InputError(f"{folder} already holds {len(done)} of {plan.n_shards} shards of this store; "
                             "pass --resume to continue it")
        # A complete-looking store is only complete if every shard still matches its checksum.
        bad = [i for i, info in done.items() if mine(i) and shard_problem(folder, i, info) is not None]
        if bad and not resume:
            raise StoreError(f"{len(bad)} shard(s) of {folder} fail their checksum (first: shard {bad[0]}); "
                             "pass --resume to redo them")
        for i in bad:
            discard_shard(folder, i)
    remove_partial(folder, mine)
    done = complete_shards(folder)
    return [i for i in range(plan.n_shards) if mine(i) and i not in done]


def extract(lm, docs: list[Document], sites, out: str | Path, context: int = 128, stride: int | None = None,
            batch_size: int = 8, dtype: str = "float16", resume: bool = False, skip_first: bool = False,
            pack: bool = False, max_tokens: int | None = None, worker: int = 0, workers: int = 1,
            windows_per_shard: int | None = None, progress: bool = True, executor=None) -> ActivationStore:
    """Fill (or resume) an activation store at `out`; returns it opened for reading.

    `executor`: None fills the shards in this process; a `lamina.ray_jobs.RayExecutor` fills them on a
    Ray actor pool (the same shards, files and manifest)."""
    settings = ExtractSettings(sites=sites if isinstance(sites, str) else tuple(sites), context=context,
                               stride=stride, batch_size=batch_size, dtype=dtype, skip_first=skip_first, pack=pack,
                               max_tokens=max_tokens, windows_per_shard=windows_per_shard)
    return extract_with(lm, docs, settings, out, resume=resume, worker=worker, workers=workers, progress=progress,
                        executor=executor)


def extract_with(lm, docs: list[Document], settings: ExtractSettings, out: str | Path, resume: bool = False,
                 worker: int = 0, workers: int = 1, progress: bool = True, executor=None) -> ActivationStore:
    """`extract` with its settings as one `ExtractSettings` (what the CLI builds)."""
    from lamina.models.registry import as_model
    from lamina.report.output import check_output

    lm = as_model(lm)
    check_output(out, "out")
    workers = validate.integer("workers", workers)
    if not 0 <= worker < workers:
        raise InputError(f"worker must be in 0..{workers - 1}, not {worker}")
    if executor is not None and workers > 1:
        raise InputError("--ray fills every shard of the store: drop --worker/--workers")
    if executor is None:
        plan = plan_store(lm, docs, settings, out)
        with StoreLock(plan.folder, WHOLE if workers == 1 else f"worker-{worker}-of-{workers}"):
            fill_shards(lm, plan, open_store(plan, resume, lambda i: i % workers == worker), progress)
        return ActivationStore(plan.folder)
    executor.start()  # connect and check the cluster's resources before anything is written
    try:
        plan = plan_store(lm, docs, settings, out)
        with StoreLock(plan.folder, WHOLE):  # the actors write under the driver's lock
            executor.fill(lm, plan, open_store(plan, resume), progress)
    finally:
        executor.close()
    return ActivationStore(plan.folder)


def fill_shards(lm, plan: ShardPlan, todo: list[int], progress: bool = True) -> None:
    """Capture and write the shards in `todo`, in this process."""
    for index in tqdm(todo, desc=f"extract -> {plan.folder.name}", unit="shard", disable=not progress):
        write_shard_of(lm, plan.folder, plan.settings, plan.widths, index, index * plan.per_shard,
                       plan.windows_of(index))


def write_shard_of(lm, folder: Path, settings: ExtractSettings, widths: dict[str, int], index: int,
                   first_window: int, windows: list[Window]) -> dict:
    """Capture the windows of shard `index` and write it with its sidecar; returns the sidecar."""
    parsed = lm.sites(list(settings.sites))
    storage = STORAGE_DTYPES[settings.dtype]
    # One buffer per site, sized for the shard and filled in place: no list of batch pieces to
    # concatenate (a second copy), and the same large allocation every shard, so memory stays flat.
    capacity = sum(len(w.ids) for w in windows)
    tensors = {s.name: torch.empty(capacity, widths[s.name], dtype=storage) for s in parsed}
    tensors["token_id"] = torch.empty(capacity, dtype=torch.long)
    tensors["row_id"] = torch.empty(capacity, dtype=torch.long)
    n = 0
    for batch in batches(windows, settings.batch_size, pad_id(lm.tokenizer), settings.skip_first):
        acts = lm.capture(lm.inputs(batch.input_ids, batch.attention_mask), parsed)
        rows = int(batch.count.sum())
        for s in parsed:
            tensors[s.name][n:n + rows] = acts[s.name][batch.count].flatten(1)
        tensors["token_id"][n:n + rows] = batch.input_ids[batch.count]
        tensors["row_id"][n:n + rows] = batch.row_ids[batch.count]
        n += rows
    tensors = {k: v[:n] for k, v in tensors.items()}  # leading rows of a contiguous tensor: contiguous
    return write_shard(Path(folder), index, tensors, {"windows": [first_window, first_window + len(windows)],
                                                      "n_rows": n})
