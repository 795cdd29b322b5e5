"""Reading a neuron index: the neuron table, and one neuron's record (stats, histogram, examples) by slices."""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors import safe_open

from lamina.data.windows import split_row_id
from lamina.errors import InputError, SiteError

SCALARS = ("mean", "std", "min", "max", "frac_pos")


class NeuronIndex:
    """An index folder written by `lamina index` (default STORE/index)."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not (folder / "index.json").exists() and (folder / "index" / "index.json").exists():
            folder = folder / "index"  # the store folder was given
        if not (folder / "index.json").exists():
            raise InputError(f"{folder} has no neuron index; build one with `lamina index STORE`")
        self.folder = folder
        self.meta = json.loads((folder / "index.json").read_text())
        self.settings = self.meta["settings"]

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
