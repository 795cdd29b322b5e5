"""Reading a neuron index: the neuron table, and one neuron's record (stats, histogram, examples) by slices."""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors import safe_open

from lamina.data.windows import split_row_id
from lamina.errors import InputError, SiteError, StoreError
from lamina.store.manifest import check_site_name

SCALARS = ("mean", "std", "min", "max", "frac_pos")
COUNTS = ("k", "before", "after", "reservoir", "n_quantiles", "per_quantile")  # settings read back: ints >= 0


def check_meta(meta, folder: Path) -> dict:
    """index.json's fields, checked (types, ranges, site names that are plain file names); StoreError if not."""
    def bad(what: str):
        raise StoreError(f"{folder / 'index.json'}: {what}; rebuild it with `lamina index STORE`")

    if not isinstance(meta, dict):
        bad("not a JSON object")
    sites, settings = meta.get("sites"), meta.get("settings")
    if not isinstance(sites, list) or not sites:
        bad("'sites' is not a list of sites")
    for site in sites:
        problem = check_site_name(site)
        if problem:
            bad(problem)
        if not (folder / f"{site}.safetensors").is_file():
            bad(f"the file of site {site!r} is missing")
    if not isinstance(settings, dict):
        bad("'settings' is not an object")
    for key in COUNTS:
        value = settings.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1 << 20:
            bad(f"settings.{key} is {value!r}, not a count")
    if not isinstance(meta.get("store_key"), str) or not isinstance(meta.get("n_rows"), int):
        bad("it does not record the store it indexes (store_key, n_rows)")
    return meta


class NeuronIndex:
    """An index folder written by `lamina index` (default STORE/index); with `store`, refused unless it was
    built from that store (the same key and row count)."""

    def __init__(self, folder: str | Path, store=None):
        folder = Path(folder)
        if not (folder / "index.json").exists() and (folder / "index" / "index.json").exists():
            folder = folder / "index"  # the store folder was given
        if not (folder / "index.json").exists():
            raise InputError(f"{folder} has no neuron index; build one with `lamina index STORE`")
        self.folder = folder
        try:
            meta = json.loads((folder / "index.json").read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            raise StoreError(f"{folder / 'index.json'} is unreadable or not JSON; rebuild it with "
                             "`lamina index STORE`") from None
        self.meta = check_meta(meta, folder)
        self.settings = self.meta["settings"]
        if store is not None and (self.meta["store_key"] != store.manifest["key"]
                                  or self.meta["n_rows"] != store.n_rows):
            raise StoreError(f"index built for another store: run `lamina index {store.folder}` again")

    @property
    def sites(self) -> list[str]:
        return list(self.meta["sites"])

    @cached_property
    def table(self):
        """pandas DataFrame, one row per neuron of every site: site, neuron, max, mean, std, min, frac_pos."""
        import pandas as pd

        return pd.read_parquet(self.folder / "neurons.parquet")

    def width(self, site: str) -> int:
        self._check(site)
        with safe_open(str(self.folder / f"{site}.safetensors"), framework="np") as f:
            return int(f.get_slice("mean").get_shape()[0])

    def _check(self, site: str) -> None:
        if site not in self.sites:
            raise SiteError(f"site {site} is not in this index; it holds {', '.join(self.sites)}")

    def arrays(self, site: str, neuron: int) -> dict[str, np.ndarray]:
        """Every array of one neuron (its slice of each [d, ...] array), plus the shared histogram edges."""
        n = self.width(site)
        if not 0 <= neuron < n:
            raise SiteError(f"{site}:{neuron}: neuron index out of range; {site} has neurons 0-{n - 1}")
        out = {}
        with safe_open(str(self.folder / f"{site}.safetensors"), framework="np") as f:
            for key in f.keys():  # noqa: SIM118  (safe_open is not a dict)
                s = f.get_slice(key)
                shape = s.get_shape()
                out[key] = f.get_tensor(key) if key in ("n", "hist_edges", "sample_bin") or not shape else s[neuron]
        return out

    def neuron(self, site: str, neuron: int, tokenizer=None, doc_ids=None) -> dict:
        """One neuron as plain data: stats, histogram, top examples (highest first) and quantile samples.

        Each example: activation, doc, position, tokens (text when a tokenizer is given, else ids), token_ids,
        activations (per token, None where not stored) and focus (the example token's index)."""
        a = self.arrays(site, neuron)
        before = self.settings["before"]

        def example(value, row_id, tokens, acts, extra=None):
            doc, pos = split_row_id(int(row_id))
            keep = tokens >= 0
            ids = tokens[keep].tolist()
            return {"activation": float(value), "doc": doc_ids[doc] if doc_ids else doc, "doc_index": doc,
                    "position": pos, "token_ids": ids,
                    "tokens": [tokenizer.decode([t]) for t in ids] if tokenizer is not None else ids,
                    "activations": [None if np.isnan(v) else float(v) for v in acts[keep]],
                    "focus": int(keep[:before].sum()), **(extra or {})}

        top = [example(v, r, t, x) for v, r, t, x in zip(a["top_value"], a["top_row_id"], a["top_tokens"],
                                                            a["top_acts"]) if r >= 0]
        samples = [example(v, r, t, x, {"bin": int(b)}) for v, r, t, x, b in
                   zip(a["sample_value"], a["sample_row_id"], a["sample_tokens"], a["sample_acts"], a["sample_bin"])
                   if r >= 0]
        return {"site": site, "index": neuron, "n": int(a["n"]), **{k: float(a[k]) for k in SCALARS},
                "histogram": {"edges": a["hist_edges"].tolist(), "counts": a["hist"].tolist(),
                              "underflow": int(a["hist_under"]), "overflow": int(a["hist_over"])},
                "quantile_edges": a["quantile_edges"].tolist(), "top_examples": top, "quantile_samples": samples}
