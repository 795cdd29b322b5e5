"""What `lamina browse` serves, as plain data: the store, its index, tune runs, token search, projections.

Everything is read-only and addressed by names checked against what was given on the command line (stored
sites, neuron indices in range, tune folders by number), never by a path from the request. The index must be
the store's own (`NeuronIndex(..., store=)` checks its key and row count). The tokenizer loads in a background
thread at start and the model on first use, also in the background (`lm_if_ready`): no request waits behind
a load it did not ask for.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lamina.errors import InputError, SiteError
from lamina.index import NeuronIndex
from lamina.store import ActivationStore
from lamina.store.columns import chunks, gather
from lamina.store.manifest import stored_counts

SEARCH_OCCURRENCES = 4096  # occurrences of a token read per search (the first ones in corpus order)


class NotFound(InputError):
    """A page or record that does not exist: the server answers 404 with this message."""


class BrowseData:
    MAX_TEXT = 2000  # characters of a text typed on a neuron page

    def __init__(self, store: str | Path, tune=()):
        self.store = ActivationStore(store)
        self.index = NeuronIndex(self.store.folder, store=self.store)
        self.model = self.store.manifest["settings"]["model"]
        self.tune = [self._read_tune(Path(t)) for t in tune]
        self._lock = threading.Lock()          # the model's load
        self._tok_lock = threading.Lock()      # the tokenizer's load and the token-text table
        self._tokenizer = None
        self._tables: dict[str, pd.DataFrame] = {}
        self._tables_lock = threading.Lock()
        self._token_texts: dict[str, list[int]] | None = None
        self._lm = None
        self._loading: threading.Thread | None = None
        self._load_error: Exception | None = None

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

    def warm_up(self) -> None:
        """Load the tokenizer in a background thread (the first page that needs it then finds it ready)."""
        def load():
            try:
                _ = self.tokenizer
            except Exception:  # noqa: S110  (the first page that needs it raises the same error, in one line)
                pass

        threading.Thread(target=load, name="lamina-browse-tokenizer", daemon=True).start()

    @property
    def tokenizer(self):
        """The store's tokenizer, loaded once (by the first thread that asks; the others wait for it)."""
        with self._tok_lock:
            if self._tokenizer is None:
                from lamina.models.registry import load_tokenizer

                self._tokenizer = load_tokenizer(self.model)
            return self._tokenizer

    def _load_model(self) -> None:
        import lamina

        try:
            self._lm = lamina.load(self.model, seed=self.store.manifest["settings"].get("seed") or 0)
        except Exception as err:  # kept for the request that asks next
            self._load_error = err

    def lm_if_ready(self):
        """The store's model when loaded; else None, with its load started in a background thread."""
        with self._lock:
            if self._lm is not None:
                return self._lm
            if self._load_error is not None:
                err, self._load_error, self._loading = self._load_error, None, None
                raise InputError(f"cannot load the store's model {self.model}: {str(err).splitlines()[0][:200]}")
            if self._loading is None:
                self._loading = threading.Thread(target=self._load_model, name="lamina-browse-model", daemon=True)
                self._loading.start()
            return None

    def lm(self):
        """The store's model, waiting for its load (scripts; the pages use `lm_if_ready`)."""
        while self.lm_if_ready() is None:
            self._loading.join()
        return self._lm

    def neuron(self, site: str, index: int) -> dict:
        """The JSON record of one neuron (the API's answer), with its tuning rows from every --tune run."""
        self.check_neuron(site, index)
        record = self.index.neuron(site, index, self.tokenizer, self.store.manifest["doc_ids"])
        record["tuning"] = self.tuning(site, index)
        return record

    def live(self, site: str, index: int, text: str) -> dict:
        """One text of the user's through the model: this neuron's activation on each of its tokens."""
        self.check_neuron(site, index)
        if len(text) > self.MAX_TEXT:
            raise InputError(f"the text is {len(text)} characters; give at most {self.MAX_TEXT}")
        lm = self.lm()
        acts = lm.capture([text], [site], truncate=True)
        ids = acts.input_ids[0][acts.attention_mask[0].bool()].tolist()
        values = acts[site][0][: len(ids)].flatten(1)[:, index].float()
        best = int(values.argmax()) if len(ids) else 0
        return {"activation": float(values[best]) if len(ids) else float("nan"), "doc": "your text",
                "position": best, "token_ids": ids, "tokens": [lm.tokenizer.decode([t]) for t in ids],
                "activations": [float(v) for v in values], "focus": best}

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
        """The neuron table of a site, joined with every tune run's columns (prefixed by the run's folder);
        built once per site (the index and the tune runs do not change while the server runs)."""
        if site not in self.index.sites:
            raise NotFound(f"site {site!r} is not in this index; it holds {', '.join(self.index.sites)}")
        with self._tables_lock:
            if site not in self._tables:
                self._tables[site] = self._site_table(site)
            return self._tables[site]

    def _site_table(self, site: str) -> pd.DataFrame:
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
        counts = stored_counts(self.store.manifest)   # what the store read, not the corpus's size
        return {"model": self.model, "n_tokens": self.store.n_rows, "n_docs": counts["documents_read"],
                "n_docs_corpus": counts["documents_in_corpus"],
                "context": s["context"], "storage_dtype": s["storage_dtype"], "sites": sites,
                "index": self.index.settings}

    # ------------------------------------------------------------------ search and projection
    @property
    def _by_text(self) -> dict[str, list[int]]:
        """Stripped token text -> token ids ("dog" -> ids of "dog" and " dog"), built on the first search."""
        tok = self.tokenizer
        with self._tok_lock:
            if self._token_texts is None:
                out: dict[str, list[int]] = {}
                for i in sorted(tok.get_vocab().values()):
                    out.setdefault(tok.decode([i]).strip(), []).append(i)
                self._token_texts = out
            return self._token_texts

    def token_ids(self, text: str) -> tuple[list[int], str]:
        """(token ids whose text, stripped, equals `text`, or else the first token of `text`; how they were found)."""
        text = text.strip()
        if not text:
            raise InputError("give a token to search for")
        exact = self._by_text.get(text)
        if exact:
            return exact, f"the tokens whose text, without its spaces, is {text!r}"
        first = self.tokenizer(text, add_special_tokens=False)["input_ids"][:1]
        return first, f"no token is {text!r}; the first token of its tokenization"

    def search(self, text: str, site: str, limit: int = 50) -> dict:
        """The neurons of `site` with the highest mean activation over the stored occurrences of a token."""
        if site not in self.index.sites:
            raise NotFound(f"site {site!r} is not in this index; it holds {', '.join(self.index.sites)}")
        ids, how = self.token_ids(text)
        rows = []
        for start, part in chunks(self.store, ["token_id"], rows=1 << 20):
            hit = np.flatnonzero(np.isin(part["token_id"].numpy(), ids))
            rows.append(start + hit)
            if sum(len(r) for r in rows) >= SEARCH_OCCURRENCES:
                break
        rows = np.concatenate(rows)[:SEARCH_OCCURRENCES]
        result = {"query": text, "how": how, "token_ids": ids, "tokens": [self.tokenizer.decode([i]) for i in ids],
                  "site": site, "occurrences": len(rows), "capped": len(rows) >= SEARCH_OCCURRENCES,
                  "n_rows": self.store.n_rows, "neurons": []}
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


def distinct_windows(examples: list[dict], width: int) -> tuple[list[dict], int]:
    """Examples (highest first) without those whose token lies inside the window of a higher one of the same
    document (`width` = tokens before + after), and how many were left out."""
    kept, left_out = [], 0
    for e in examples:
        if any(k["doc_index"] == e["doc_index"] and abs(k["position"] - e["position"]) <= width for k in kept):
            left_out += 1
        else:
            kept.append(e)
    return kept, left_out
