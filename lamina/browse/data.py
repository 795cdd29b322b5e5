"""What `lamina browse` serves, as plain data: the store, its index, tune runs, token search, projections.

Everything is read-only and addressed by names checked against what was given on the command line (stored
sites, neuron indices in range, tune folders by number), never by a path from the request.
"""
from __future__ import annotations

import math
import threading
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lamina.errors import InputError, SiteError
from lamina.index import NeuronIndex
from lamina.store import ActivationStore
from lamina.store.columns import chunks, gather

SEARCH_OCCURRENCES = 4096  # occurrences of a token read per search (the first ones in corpus order)


class NotFound(InputError):
    """A page or record that does not exist: the server answers 404 with this message."""


class BrowseData:
    def __init__(self, store: str | Path, tune=()):
        self.store = ActivationStore(store)
        self.index = NeuronIndex(self.store.folder)
        self.model = self.store.manifest["settings"]["model"]
        self.tune = [self._read_tune(Path(t)) for t in tune]
        self._lock = threading.Lock()
        self._lm = None

    @staticmethod
    def _read_tune(folder: Path) -> pd.DataFrame:
        from lamina.analyses.tuning.run_folder import read_tune_run

        table, _ = read_tune_run(folder)
        table.attrs["folder"] = folder.name
        return table

    # ------------------------------------------------------------------ lookups
    def check_neuron(self, site: str, index: int) -> None:
        if site not in self.index.sites:
            raise NotFound(f"site {site!r} is not in this index; it holds {', '.join(self.index.sites)}")
        n = self.index.width(site)
        if not 0 <= index < n:
            raise NotFound(f"{site}:{index}: no such neuron; {site} has neurons 0-{n - 1}")

    @cached_property
    def tokenizer(self):
        from lamina.models.registry import load_tokenizer

        return load_tokenizer(self.model)

    def lm(self):
        """The store's model, loaded on first use (vocabulary projections only)."""
        with self._lock:
            if self._lm is None:
                import lamina

                self._lm = lamina.load(self.model, seed=self.store.manifest["settings"].get("seed") or 0)
            return self._lm

    def neuron(self, site: str, index: int) -> dict:
        """The JSON record of one neuron (the API's answer), with its tuning rows from every --tune run."""
        self.check_neuron(site, index)
        record = self.index.neuron(site, index, self.tokenizer, self.store.manifest["doc_ids"])
        record["tuning"] = self.tuning(site, index)
        return record

    def tuning(self, site: str, index: int) -> list[dict]:
        rows = []
        for number, table in enumerate(self.tune):
            hit = table[table["name"] == f"{site}:{index}"] if "name" in table else table.iloc[:0]
            for row in hit.to_dict(orient="records"):
                rows.append({"run": table.attrs["folder"], "run_index": number,
                             **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()
                                if np.isscalar(v)}})
        return rows

    def site_table(self, site: str) -> pd.DataFrame:
        """The neuron table of a site, joined with every tune run's columns (prefixed by the run's folder)."""
        if site not in self.index.sites:
            raise NotFound(f"site {site!r} is not in this index; it holds {', '.join(self.index.sites)}")
        table = self.index.table[self.index.table["site"] == site].drop(columns="site").reset_index(drop=True)
        table["top_token"] = [self.tokenizer.decode([int(t)]) if t >= 0 else "" for t in table["top_token_id"]]
        for run in self.tune:
            name = run.attrs["folder"]
            keep = run[run["name"].str.startswith(f"{site}:")] if "name" in run else run.iloc[:0]
            cols = [c for c in keep.columns if c not in ("layer", "name", "neuron") and keep[c].dtype != object]
            part = keep[["neuron"] + cols].rename(columns={c: f"{name}.{c}" for c in cols})
            table = table.merge(part, on="neuron", how="left")
        return table

    def overview(self) -> dict:
        s = self.store.manifest["settings"]
        sites = []
        for site in self.index.sites:
            t = self.index.table[self.index.table["site"] == site]
            rms = float(np.sqrt((t["std"] ** 2 + t["mean"] ** 2).mean()))
            sites.append({"site": site, "neurons": len(t), "max": float(t["max"].max()), "rms": rms,
                          "median_std": float(t["std"].median())})
        return {"model": self.model, "n_tokens": self.store.n_rows, "n_docs": len(self.store.manifest["doc_ids"]),
                "context": s["context"], "storage_dtype": s["storage_dtype"], "sites": sites,
                "index": self.index.settings}

    # ------------------------------------------------------------------ search and projection
    @cached_property
    def _by_text(self) -> dict[str, list[int]]:
        """Stripped token text -> token ids ("dog" -> ids of "dog" and " dog"), built on the first search."""
        out: dict[str, list[int]] = {}
        for i in sorted(self.tokenizer.get_vocab().values()):
            out.setdefault(self.tokenizer.decode([i]).strip(), []).append(i)
        return out

    def token_ids(self, text: str) -> list[int]:
        """Token ids whose text, stripped, equals `text`; else the first token of `text`."""
        text = text.strip()
        if not text:
            raise InputError("give a token to search for")
        return self._by_text.get(text) or self.tokenizer(text, add_special_tokens=False)["input_ids"][:1]

    def search(self, text: str, site: str, limit: int = 50) -> dict:
        """The neurons of `site` with the highest mean activation over the stored occurrences of a token."""
        if site not in self.index.sites:
            raise NotFound(f"site {site!r} is not in this index; it holds {', '.join(self.index.sites)}")
        ids = self.token_ids(text)
        rows = []
        for start, part in chunks(self.store, ["token_id"], rows=1 << 20):
            hit = np.flatnonzero(np.isin(part["token_id"].numpy(), ids))
            rows.append(start + hit)
            if sum(len(r) for r in rows) >= SEARCH_OCCURRENCES:
                break
        rows = np.concatenate(rows)[:SEARCH_OCCURRENCES]
        result = {"query": text, "token_ids": ids, "tokens": [self.tokenizer.decode([i]) for i in ids],
                  "site": site, "occurrences": len(rows), "neurons": []}
        if len(rows) == 0:
            return result
        values = gather(self.store, site, rows).float()                                 # [m, d]
        mean = values.mean(0)
        t = self.index.table[self.index.table["site"] == site]
        z = (mean.numpy() - t["mean"].to_numpy()) / np.maximum(t["std"].to_numpy(), 1e-12)
        best = torch.argsort(mean, descending=True)[:limit].tolist()
        result["neurons"] = [{"neuron": i, "mean_on_token": float(mean[i]), "z": float(z[i]),
                              "max": float(t["max"].iloc[i]), "mean": float(t["mean"].iloc[i])} for i in best]
        return result

    def projection(self, site: str, index: int, k: int = 15) -> list[dict]:
        """Vocabulary projection as `lamina project` (loads the model on first use)."""
        from lamina.analyses.vocab.projections import project

        self.check_neuron(site, index)
        try:
            return project(self.lm(), f"{site}:{index}", k).to_dict(orient="records")
        except SiteError as err:
            raise NotFound(str(err)) from None
