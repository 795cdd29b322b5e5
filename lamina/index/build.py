"""`lamina index`: one streaming pass over a store -> per neuron of every stored site, its statistics and
examples, written beside the store (DIR/index/) for `lamina browse` and for scripts.

    store shards ──► chunks of rows (all sites at once) ──► per site, runningstats objects:
        RunningMoments      n, mean, std, min, max, fraction > 0            [d]
        RunningHistogram    counts over fixed signed-log edges (shared by every neuron, so mergeable)
        RunningTopK         the K largest values with their row ids (optionally one per document)
        RowReservoir        a uniform sample of rows (by a hash of the row id): the quantile samples
    each shard is indexed alone and merged in, so an index never depends on which worker wrote a shard;
    then one gather pass reads the context window (token ids and the neuron's values) of every example.

Files: index/index.json (settings, and the key and row count of the store it indexes), index/SITE.safetensors
(arrays, neuron first: a page reads one slice), index/neurons.parquet (one row per neuron of every site: the
table the browser sorts and filters). The index is written whole into a temporary folder beside its place and
renamed into it, so an interrupted (re-)index leaves the old index whole or the new one, never a mix.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from lamina.data.windows import POSITION_BITS, row_id, split_row_id
from lamina.errors import InputError
from lamina.reservoir import RowReservoir
from lamina.runningstats import RunningHistogram, RunningMoments, RunningTopK
from lamina.store.columns import chunks, find_rows, gather, shard_spans
from lamina.store.lock import process_alive

INDEX = "index"


def signed_log_edges(lo: float = 1e-3, hi: float = 1e4, per_decade: int = 8) -> torch.Tensor:
    """Histogram edges -hi..-lo, lo..hi, geometric per sign, one bin [-lo, lo] around zero."""
    pos = torch.logspace(np.log10(lo), np.log10(hi), round(np.log10(hi / lo) * per_decade) + 1, dtype=torch.float64)
    return torch.cat([-pos.flip(0), pos]).float().double()  # values float32 holds exactly: binned in float32


@dataclass(frozen=True)
class IndexSettings:
    k: int = 20                 # top examples per neuron
    per_doc: bool = False       # at most one top example per document
    before: int = 16            # context tokens shown before an example's token
    after: int = 8              # and after
    reservoir: int = 2048       # rows in the uniform sample behind the quantile samples
    n_quantiles: int = 10       # quantile bins of the sample
    per_quantile: int = 2       # examples per bin
    chunk_rows: int = 2048      # rows per read


class SiteState:
    """The mergeable streaming state of one site."""

    def __init__(self, s: IndexSettings, edges: torch.Tensor):
        self.moments = RunningMoments()
        self.hist = RunningHistogram(edges, per_dim=True)
        self.top = RunningTopK(s.k, group_bits=POSITION_BITS if s.per_doc else None)
        self.sample = RowReservoir(s.reservoir)

    def update(self, x: torch.Tensor, row_ids: torch.Tensor) -> None:
        x = x.float()                                   # [n, d]: batch sums in float32, merged in float64
        self.moments.update(x, dtype=torch.float32)
        self.hist.update(x)
        self.top.update(x, row_ids)
        self.sample.update(x, row_ids)

    def merge(self, other: SiteState) -> SiteState:
        for name in ("moments", "hist", "top", "sample"):
            getattr(self, name).merge(getattr(other, name))
        return self


def index_states(store, settings: IndexSettings = IndexSettings(), sites=None, shards=None,
                 progress: bool = True) -> dict[str, SiteState]:
    """The streaming pass: {site: SiteState} over the given shards (default: all), each shard merged in."""
    sites = list(sites or store.sites)
    edges = signed_log_edges()
    total = {site: SiteState(settings, edges) for site in sites}
    spans = [span for span in shard_spans(store) if shards is None or span[0] in shards]
    bar = tqdm(total=sum(n for *_, n in spans), desc=f"index {store.folder.name}", unit="tok", disable=not progress)
    for index, _, _ in spans:
        part = {site: SiteState(settings, edges) for site in sites}
        for _, chunk in chunks(store, sites + ["row_id"], rows=settings.chunk_rows, shards={index}):
            for site in sites:
                part[site].update(chunk[site], chunk["row_id"])
            bar.update(len(chunk["row_id"]))
        for site in sites:
            total[site].merge(part[site])
    bar.close()
    return total


def _contexts(store, site: str, centers: np.ndarray, neurons: np.ndarray, s: IndexSettings):
    """Token ids [m, W] (-1 where none) and the neuron's values [m, W] (NaN) around each center row id."""
    offsets = np.arange(-s.before, s.after + 1)
    doc, pos = split_row_id(centers)
    want_pos = pos[:, None] + offsets[None, :]                                  # [m, W]
    valid = (centers[:, None] >= 0) & (want_pos >= 0)
    wanted = row_id(doc[:, None], want_pos.clip(0))
    rows = np.where(valid, find_rows(store, wanted.reshape(-1)).reshape(wanted.shape), -1)
    ok = rows >= 0
    tokens = np.full(rows.shape, -1, dtype=np.int32)
    values = np.full(rows.shape, np.nan, dtype=np.float32)
    if ok.any():
        tokens[ok] = gather(store, "token_id", rows[ok]).numpy()
        cols = np.broadcast_to(neurons[:, None], rows.shape)[ok]
        values[ok] = gather(store, site, rows[ok], cols).float().numpy()
    return tokens, values


def _quantile_picks(sample: RowReservoir, s: IndexSettings):
    """Per neuron, `per_quantile` sample rows from each of `n_quantiles` bins of its sample's values."""
    values = sample.values.T                                                    # [d, r]
    d, r = values.shape
    n_pick = s.n_quantiles * s.per_quantile
    qs = torch.linspace(0, 1, s.n_quantiles + 1, dtype=torch.float64)
    edges = torch.quantile(values.double(), qs, dim=1).T if r else torch.full((d, len(qs)), float("nan"))
    order = values.argsort(dim=1)                                               # ascending
    rows = torch.full((d, n_pick), -1, dtype=torch.int64)
    picked = torch.full((d, n_pick), float("nan"))
    bins = torch.arange(n_pick) // max(s.per_quantile, 1)
    for b in range(s.n_quantiles):                                              # equal-count bins of the sample
        lo, hi = (b * r) // s.n_quantiles, ((b + 1) * r) // s.n_quantiles
        for j in range(min(s.per_quantile, hi - lo)):
            # the sample is in hash order: the first rows of a bin (by position in the sample) are random picks
            inside = order[:, lo:hi]
            first = inside.min(1).values if j == 0 else inside.kthvalue(j + 1, dim=1).values
            rows[:, b * s.per_quantile + j] = sample.row_ids[first]
            picked[:, b * s.per_quantile + j] = values.gather(1, first[:, None])[:, 0]
    return edges.float(), rows, picked, bins


def write_index(store, out: str | Path | None = None, settings: IndexSettings = IndexSettings(), sites=None,
                progress: bool = True) -> Path:
    """Build the index of a complete store and write it to `out` (default: STORE/index)."""
    if not store.complete:
        raise InputError(f"{store.folder} holds {len(store.shards)} of {store.manifest['n_shards']} shards; "
                         "finish it with `lamina extract ... --resume` first")
    if settings.k < 1 or settings.reservoir < 1 or min(settings.before, settings.after, settings.n_quantiles) < 0:
        raise InputError("IndexSettings: k and reservoir must be at least 1; before, after and n_quantiles at least 0")
    t0 = time.perf_counter()
    final = Path(out) if out is not None else store.folder / INDEX
    check_replaceable(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    out = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    try:
        _write_files(store, out, settings, sites, progress, t0)
        replace_folder(out, final)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return final


def check_replaceable(folder: Path) -> None:
    """Refuse an --out that holds anything but an earlier index (its files would be replaced)."""
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / "index.json").exists())):
        raise InputError(f"{folder} exists and is not a neuron index; give another --out")


def remove_stale_partials(final: Path) -> None:
    """Temporary folders of index runs that were killed (their process is gone); an old index moved aside by a
    run killed between its two renames goes back into place."""
    for kind in ("partial", "old"):
        for path in final.parent.glob(f".{final.name}.{kind}-*"):
            pid = path.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or process_alive(int(pid)):
                continue
            if kind == "old" and not final.exists():
                os.rename(path, final)
            else:
                shutil.rmtree(path, ignore_errors=True)


def replace_folder(new: Path, final: Path) -> None:
    """Move the finished folder `new` to `final`, the old one aside first and removed after."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old, ignore_errors=True)


def _write_files(store, out: Path, settings: IndexSettings, sites, progress: bool, t0: float) -> None:
    states = index_states(store, settings, sites, progress=progress)
    tables = []
    for site, st in tqdm(states.items(), desc="examples", disable=not progress):
        m, d = st.moments, st.moments.mean.numel()
        top_v, top_r = st.top.result()                                          # [k, d]
        top_v, top_r = top_v.T.contiguous(), top_r.T.contiguous()              # [d, k]
        neurons = np.repeat(np.arange(d), top_r.shape[1])
        tok, val = _contexts(store, site, top_r.reshape(-1).numpy(), neurons, settings)
        q_edges, q_rows, q_vals, q_bins = _quantile_picks(st.sample, settings)
        qtok, qval = _contexts(store, site, q_rows.reshape(-1).numpy(), np.repeat(np.arange(d), q_rows.shape[1]),
                               settings)
        W = settings.before + settings.after + 1
        arrays = {
            "n": torch.tensor(m.n), "mean": m.mean.float(), "std": m.std().float(), "min": m.min.float(),
            "max": m.max.float(), "frac_pos": m.frac_pos().float(), "hist_edges": st.hist.edges,
            "hist": st.hist.counts.contiguous(), "hist_under": st.hist.underflow.contiguous(),
            "hist_over": st.hist.overflow.contiguous(),
            "top_value": top_v.float(), "top_row_id": top_r,
            "top_tokens": torch.from_numpy(tok.reshape(d, -1, W)), "top_acts": torch.from_numpy(val.reshape(d, -1, W)),
            "quantile_edges": q_edges.contiguous(), "sample_value": q_vals, "sample_row_id": q_rows,
            "sample_bin": q_bins, "sample_tokens": torch.from_numpy(qtok.reshape(d, -1, W)),
            "sample_acts": torch.from_numpy(qval.reshape(d, -1, W)),
        }
        save_file({k: v.contiguous() for k, v in arrays.items()}, str(out / f"{site}.safetensors"))
        tables.append({"site": np.full(d, site), "neuron": np.arange(d), "max": arrays["max"].numpy(),
                       "mean": arrays["mean"].numpy(), "std": arrays["std"].numpy(), "min": arrays["min"].numpy(),
                       "frac_pos": arrays["frac_pos"].numpy(),
                       "top_token_id": np.where(top_r[:, 0] >= 0, tok.reshape(d, -1, W)[:, 0, settings.before], -1)})
    import pandas as pd

    table = pd.concat([pd.DataFrame(t) for t in tables], ignore_index=True)
    table.to_parquet(out / "neurons.parquet", index=False)
    meta = {"store": str(store.folder.resolve()), "store_key": store.manifest["key"],
            "model": store.manifest["settings"]["model"],
            "sites": list(states), "n_rows": store.n_rows, "settings": asdict(settings),
            "seconds": round(time.perf_counter() - t0, 2)}
    (out / "index.json").write_text(json.dumps(meta, indent=1))  # last: a folder without it is no index
