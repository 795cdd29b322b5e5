"""The laminar profile: per-layer statistics of one site kind over a corpus, streamed in constant memory.

`method="hooks"` reads every layer with forward hooks (the raw residual stream for resid_post);
`method="hidden-states"` reads `output.hidden_states[L+1]` for layer L, whose last entry is after the final
norm: that row is labelled normalized, and the raw last block (`resid_post.N-1` by hook) is profiled beside
it so that both readings of the last layer appear side by side.

`profile_store` reads the layers of a kind from an activation store instead (same statistics, same batches).

Massive activations (Sun et al. 2024): |x| > 100 and > 1000 x the layer's median |x|, located by
dimension, document, position and token.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lamina import validate
from lamina.analyses.profile.layer_stats import LayerStats
from lamina.analyses.sources.model import ModelSource
from lamina.analyses.sources.store import StoreSource
from lamina.data.corpus import Document, fingerprint
from lamina.data.windows import read_counts, split_row_id
from lamina.errors import InputError, SiteError

PROFILE_KINDS = ("resid_post", "resid_pre", "resid_mid", "attn_out", "mlp_out", "mlp_post", "mlp_pre", "q", "k", "v")
MASSIVE_ABS, MASSIVE_RATIO = 100.0, 1000.0


@dataclass
class ProfileResult:
    table: pd.DataFrame            # one row per layer reading
    dim_max_abs: np.ndarray        # [readings, d] max |x| per dimension
    massive: pd.DataFrame          # massive activations: reading, layer, dim, value, doc, position, token
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"settings": self.settings, "layers": self.table.to_dict(orient="records"),
                "massive_activations": self.massive.to_dict(orient="records")}


def _readings(lm, kind: str, method: str) -> list[tuple[str, int, str]]:
    """(label, layer, site) for each row of the profile."""
    N = lm.n_layers
    if method == "hooks":
        return [(f"{kind}.{L}", L, f"{kind}.{L}") for L in range(N)]
    if kind != "resid_post":
        raise InputError("--method hidden-states reads the residual stream only: use --kind resid_post")
    rows = [(f"hidden.{L + 1}", L, f"hidden.{L + 1}") for L in range(N)]
    rows[-1] = (f"hidden.{N} (after final norm)", N - 1, f"hidden.{N}")
    return rows + [(f"resid_post.{N - 1} (raw, by hook)", N - 1, f"resid_post.{N - 1}")]


@dataclass(frozen=True)
class ProfileSettings:
    """What a profile computes, built by keyword (the CLI's options) and sent as it is to Ray actors."""
    kind: str = "resid_post"
    method: str = "hooks"           # hooks or hidden-states
    context: int = 128
    stride: int | None = None
    batch_size: int = 8
    skip_first: bool = False
    pack: bool = False
    max_tokens: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "batch_size", validate.integer("batch_size", self.batch_size))
        object.__setattr__(self, "max_tokens", validate.limit("max_tokens", self.max_tokens))
        if self.kind not in PROFILE_KINDS:
            raise InputError(f"cannot profile '{self.kind}'; choose one of {', '.join(PROFILE_KINDS)}")
        if self.method not in ("hooks", "hidden-states"):
            raise InputError(f"unknown --method '{self.method}'; choose hooks or hidden-states")


def profile(lm, docs: list[Document], kind: str = "resid_post", method: str = "hooks", context: int = 128,
            stride: int | None = None, batch_size: int = 8, skip_first: bool = False, pack: bool = False,
            max_tokens: int | None = None, progress: bool = True, executor=None) -> ProfileResult:
    """Stream the corpus through the model once and profile every layer of `kind`.

    `executor`: None runs in this process; a `lamina.ray_jobs.RayProfileExecutor` on a Ray actor pool."""
    settings = ProfileSettings(kind=kind, method=method, context=context, stride=stride, batch_size=batch_size,
                               skip_first=skip_first, pack=pack, max_tokens=max_tokens)
    return profile_with(lm, docs, settings, progress=progress, executor=executor)


def profile_with(lm, docs: list[Document], settings: ProfileSettings, progress: bool = True,
                 executor=None) -> ProfileResult:
    """`profile` with its settings as one `ProfileSettings` (what the CLI builds)."""
    from lamina.models.registry import as_model

    lm = as_model(lm)
    s = settings
    readings = _readings(lm, s.kind, s.method)
    lm.sites([s.kind])  # unknown on this architecture -> SiteError
    sites = [site for _, _, site in readings]
    if executor is not None:
        executor.start()  # connect and check the cluster's resources before the corpus is tokenized
    try:
        source = ModelSource(lm, docs, s.context, s.stride, s.pack, s.max_tokens, s.skip_first)
        if executor is None:
            stats = profile_stats(source, sites, s.batch_size, progress, s.kind)
        else:
            stats = executor.profile_stats(lm, source, sites, s, progress)
    finally:
        if executor is not None:
            executor.close()
    counts = read_counts(source.windows, len(docs))   # what was read, not the corpus's size
    results = {"model": lm.spec, **asdict(s), "stride": s.stride or s.context, "n_windows": len(source.windows),
               "corpus": fingerprint(docs)[:16], "n_docs": counts["documents_read"],
               "n_docs_corpus": len(docs), "n_tokens_read": counts["tokens_read"]}
    return profile_result(source, readings, stats, results)


def profile_store(store, kind: str = "resid_post", batch_size: int = 8, tokenizer=None,
                  max_tokens: int | None = None, progress: bool = True) -> ProfileResult:
    """The laminar profile of the `kind` layers held in an activation store (read in chunks, no model run;
    `tokenizer`: None loads the store's model's).

    Equal to `profile` on the model and corpus that filled the store (same windows; float32 store)."""
    if kind not in PROFILE_KINDS:
        raise InputError(f"cannot profile '{kind}'; choose one of {', '.join(PROFILE_KINDS)}")
    layers = sorted((int(site.split(".")[1]), site) for site in store.sites if site.split(".")[0] == kind
                    and site.split(".")[-1].isdigit())
    if not layers:
        raise SiteError(f"{store.folder} holds no {kind} site; it holds {', '.join(store.sites)}")
    source = StoreSource(store, tokenizer, max_tokens)
    s = store.manifest["settings"]
    settings = {"model": s["model"], "kind": kind, "method": "hooks", "context": s["context"], "stride": s["stride"],
                "batch_size": batch_size, "skip_first": s["skip_first"], "pack": s["pack"], "max_tokens": max_tokens,
                "n_windows": len(source.windows), "corpus": s["corpus"][:16],
                "n_docs": read_counts(source.windows)["documents_read"], "n_docs_corpus": len(source.doc_ids),
                "n_tokens_read": read_counts(source.windows)["tokens_read"], "store": str(store.folder)}
    return profile_from(source, [(site, layer, site) for layer, site in layers], settings, batch_size, progress)


def profile_from(source, readings: list[tuple[str, int, str]], settings: dict, batch_size: int = 8,
                 progress: bool = True) -> ProfileResult:
    """Profile each (label, layer, site) reading over the batches of a source (the model or a store)."""
    stats = profile_stats(source, [site for _, _, site in readings], batch_size, progress, settings["kind"])
    return profile_result(source, readings, stats, settings)


def profile_stats(source, sites: list[str], batch_size: int = 8, progress: bool = True, kind: str = "",
                  seed: int = 0) -> list[LayerStats]:
    """One `LayerStats` per site over every batch of the source's windows (one Ray actor: its rows' windows)."""
    stats = [LayerStats(seed=seed + i) for i in range(len(sites))]
    n_batches = -(-len(source.windows) // batch_size)
    for batch, counted in tqdm(source.stream(sites, batch_size), total=n_batches, desc=f"profile {kind}",
                               unit="batch", disable=not progress):
        rows = batch.row_ids.flatten() if bool(batch.count.all()) else batch.row_ids[batch.count]
        for stat, site in zip(stats, sites):
            stat.update(counted[site], rows)
    return stats


def profile_result(source, readings: list[tuple[str, int, str]], stats: list[LayerStats],
                   settings: dict) -> ProfileResult:
    """The profile's table and massive activations from the statistics of each reading."""
    table, massive = [], []
    decode = source.tokenizer.decode
    for (label, layer, site), stat in zip(readings, stats):
        row = stat.result()
        top = row.pop("top")
        row.pop("median_sample_size")
        threshold = max(MASSIVE_ABS, MASSIVE_RATIO * row["median_abs"])
        hits = [t for t in top if abs(t["value"]) > threshold]
        for t in hits:
            doc, position = split_row_id(t["row"])
            token_id = source.token_at(t["row"])
            massive.append({"reading": label, "layer": layer, "dim": t["dim"], "value": t["value"],
                            "doc": source.doc_ids[doc] if not settings["pack"] else "packed", "position": position,
                            "token": decode([token_id]) if token_id is not None else "?"})
        table.append({"reading": label, "layer": layer, "site": site,
                      "normalized": label.endswith("(after final norm)"), **row,
                      "n_massive_in_top16": len(hits),
                      "massive_dims": sorted({t["dim"] for t in hits})})
    settings = {**settings, "massive_rule": f"|x| > {MASSIVE_ABS:g} and > {MASSIVE_RATIO:g} x median |x| of the layer"}
    dim_max = np.stack([s.dim_max_abs.numpy() for s in stats])
    columns = ["reading", "layer", "dim", "value", "doc", "position", "token"]
    return ProfileResult(pd.DataFrame(table), dim_max, pd.DataFrame(massive, columns=columns), settings)
