"""What a causal check of a tune run measures: one number per item, clean or under edits, and the item's unit.

    LabelledLoss(texts, rows, unit)    the next-token loss right after each sample's read token, on the
                                       contrast's own texts (default): items = samples, unit = a sample column;
                                       kind="kl": KL(clean || edited) at the read token (any sample)
    LabelProbe(texts, rows, unit)      a logistic probe's log-odds toward each sample's label, on final_norm at
                                       the read token (binary runs): how much of the label reaches the output
    TargetLogprob(prompts, target_ids) log p(any of the target tokens) after each prompt: items = prompts
    PairKL(pairs)                      KL(negated || affirmed) at the final token: items = negation pairs

Each has `score(lm, edits) -> float array [items]`, `units` (the unit label of each item: the bootstrap
resamples units), `texts` (what the variance of a site is measured over) and `describe` (the metric in words;
`effect` is edited minus clean, so a positive loss effect means the edit hurt the prediction).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lamina.analyses.causal.metrics import final_logits, kl
from lamina.capture import run_capture
from lamina.edits import bind_all
from lamina.errors import InputError
from lamina.sites import Site


def target_ids(tokenizer, targets: str) -> list[int]:
    """' seven, eight' -> the ids of ' seven' and ' eight'; InputError naming the pieces of a split token."""
    pieces = [t for t in targets.split(",") if t.strip()]
    if not pieces:
        raise InputError("--target: give one or more single-token targets separated by commas, e.g. ' seven, eight'")
    out = []
    for text in pieces:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            split = " + ".join(repr(tokenizer.decode([t])) for t in ids)
            raise InputError(f"--target {text!r} is {len(ids)} tokens ({split}); give single tokens "
                             "(mind the leading space: ' seven')")
        out.append(ids[0])
    return list(dict.fromkeys(out))


class LabelledLoss:
    """Next-token loss after each sample's read token (the last of its positions) on the run's own texts.

    `kind="kl"`: KL(clean || edited) of the next-token distribution at the read token instead, defined for every
    sample, also those read at their text's last token (a table's final token), which the loss leaves out."""

    def __init__(self, texts: dict[int, str], rows: pd.DataFrame, unit: str, kind: str = "loss",
                 max_length: int = 128, batch_size: int = 16):
        if kind not in ("loss", "kl"):
            raise InputError(f"unknown labelled-position metric '{kind}'; choose loss or kl")
        self.name, self.max_length, self.batch_size, self.unit = kind, max_length, batch_size, unit
        self._texts = texts
        self.rows = rows.assign(read=rows["positions"].map(max))   # the read token: the last of the positions
        self.texts = [texts[t] for t in sorted(texts)]
        self.items, self.n_final, self.units, self._clean = self.rows, 0, None, None   # set by `prepare`

    def has_next(self, tokenizer) -> np.ndarray:
        """Whether a token follows each sample's read token in its (truncated) text [rows]."""
        lengths = {t: len(tokenizer(self._texts[t], truncation=True, max_length=self.max_length)["input_ids"])
                   for t in self._texts}
        return (self.rows["read"] + 1 < self.rows["text"].map(lengths)).to_numpy()

    def prepare(self, lm) -> LabelledLoss:
        """Drop (loss) samples read at their text's last token, which no token follows; count them in `n_final`."""
        has_next = self.has_next(lm.tokenizer)
        self.n_final = int((~has_next).sum())
        self.items = self.rows[has_next | (self.name == "kl")].reset_index(drop=True)
        if self.items.empty:
            raise InputError("every sample of this tune run is read at its text's last token, so no next token "
                             "follows it: use --metric kl, or --prompts FILE --target TOKENS")
        self.units = self.items[self.unit].to_numpy() if self.unit in self.items else self.items["text"].to_numpy()
        return self

    def describe(self) -> str:
        if self.name == "kl":
            return (f"KL(clean || edited) of the next-token distribution at each sample's read token, on the tune "
                    f"run's own texts ({len(self.items)} samples)")
        note = f"; {self.n_final} samples read at their text's last token have no next token, left out" \
            if self.n_final else ""
        return (f"change in next-token loss (nats) right after each sample's read token, on the tune run's own "
                f"texts ({len(self.items)} samples{note}); positive: the edit hurt the prediction")

    def score(self, lm, edits=()) -> np.ndarray:
        """Per sample: the next token's loss, or (kl) KL(clean || edited), 0 for the clean run [samples]."""
        out = np.empty(len(self.items))
        clean = self._clean is None and not edits
        parts = []
        for rows, logp, nxt in self._read(lm, edits):
            if self.name == "loss":
                out[rows] = -logp.gather(-1, nxt.to(logp.device)[:, None])[:, 0].cpu().numpy()
            elif clean:
                parts.append((rows, logp))
                out[rows] = 0.0
            else:
                ref = self._clean[torch.as_tensor(rows)]
                out[rows] = kl(ref, logp).cpu().numpy()
        if clean and self.name == "kl":
            self._clean = torch.empty(len(self.items), parts[0][1].shape[-1])
            for rows, logp in parts:
                self._clean[torch.as_tensor(rows)] = logp.cpu()
        return out

    def _read(self, lm, edits):
        """(sample indices, log-probs at their read tokens [samples, vocab], next token ids) per batch of texts."""
        unembed = lm.model.get_submodule(lm.anatomy.family.unembed)
        for rows, h, nxt in read_tokens(lm, self._texts, self.items, "final_norm", edits, self.max_length,
                                        self.batch_size):
            with torch.inference_mode():
                yield rows, torch.log_softmax(unembed(h).float(), -1), nxt


def read_tokens(lm, texts: dict[int, str], items: pd.DataFrame, site: str, edits=(), max_length: int = 128,
                batch_size: int = 16):
    """Per batch of texts: (sample indices, `site` at each sample's read token [samples, width], the next token
    ids [samples]; a text's last token gets itself), under `edits`."""
    bound = bind_all(lm, edits)
    where = Site(site) if site == "final_norm" else lm.sites([site])[0]
    by_text = items.groupby("text").indices
    order = list(by_text)
    read = items["read"].to_numpy()
    for i in range(0, len(order), batch_size):
        chunk = order[i:i + batch_size]
        enc = lm.tokenizer([texts[t] for t in chunk], padding=True, truncation=True, max_length=max_length,
                           return_tensors="pt")
        batch = lm.inputs(enc["input_ids"], enc["attention_mask"])
        ids = batch["input_ids"]
        h = run_capture(lm.model, lm.anatomy, ids, batch["attention_mask"], [where],
                        edits=bound)[where.name].flatten(2)                 # [texts, tokens, width]
        rows, b_idx, pos = [], [], []
        for b, t in enumerate(chunk):
            real = enc["attention_mask"][b].nonzero().flatten()
            for s in by_text[t]:
                rows.append(int(s))
                b_idx.append(b)
                pos.append(int(real[read[s]]))
        b_t, p_t = torch.as_tensor(b_idx), torch.as_tensor(pos)
        nxt = ids[b_t.to(ids.device), (p_t + 1).clamp(max=ids.shape[1] - 1).to(ids.device)]
        yield rows, h[b_t.to(h.device), p_t.to(h.device)], nxt


class LabelProbe:
    """Log-odds toward each sample's own label from a logistic probe on the last residual (`final_norm`) at its
    read token: how much of the label reaches the model's output. Fitted on the clean run and cross-fitted
    (each sample scored by the probe of the folds that held it out; folds grouped by the unit)."""

    name = "probe"

    def __init__(self, texts: dict[int, str], rows: pd.DataFrame, unit: str, folds: int = 5, max_length: int = 128,
                 batch_size: int = 16):
        labels = rows["label"].astype(str).str.lower()
        if not labels.isin(["true", "false"]).all():
            raise InputError("--metric probe needs a run with two groups (a binary label); use --metric loss")
        self._texts, self.unit, self.folds = texts, unit, folds
        self.max_length, self.batch_size = max_length, batch_size
        self.items = rows.assign(read=rows["positions"].map(max)).reset_index(drop=True)
        self.y = (labels == "true").to_numpy()
        self.units = self.items[unit].to_numpy() if unit in self.items else self.items["text"].to_numpy()
        self.texts = [texts[t] for t in sorted(texts)]
        self._probes = None

    def prepare(self, lm) -> LabelProbe:
        return self

    def describe(self) -> str:
        return (f"change in a logistic probe's log-odds toward each sample's own label, read from final_norm at "
                f"the sample's token ({len(self.items)} samples; probe fitted on the clean run, {self.folds}-fold "
                f"cross-fitted by {self.unit}); negative: the edit erased label information that reaches the output")

    def activations(self, lm, edits=()) -> np.ndarray:
        """final_norm at every sample's read token [samples, d_model], under `edits`."""
        out = None
        for rows, h, _ in read_tokens(lm, self._texts, self.items, "final_norm", edits, self.max_length,
                                      self.batch_size):
            h = h.float().cpu().numpy()
            out = np.empty((len(self.items), h.shape[1])) if out is None else out
            out[rows] = h
        return out

    def score(self, lm, edits=()) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = self.activations(lm, edits)
        if self._probes is None:  # the first call is the clean run: fit there, then only apply
            if edits:
                raise InputError("the label probe is fitted on the clean run: score the clean run first")
            groups = pd.factorize(pd.Series(self.units))[0]
            n = min(self.folds, int(groups.max()) + 1)
            if n < 2 or self.y.all() or not self.y.any():
                raise InputError("--metric probe needs at least two units and both labels")
            self._probes = [(test, make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
                x[train], self.y[train])) for train, test in GroupKFold(n).split(x, self.y, groups)]
        out = np.empty(len(self.items))
        for test, probe in self._probes:
            out[test] = probe.decision_function(x[test])
        return np.where(self.y, out, -out)


class TargetLogprob:
    """log of the total probability of the target tokens right after each prompt."""

    name = "target"

    def __init__(self, prompts: list[str], ids: list[int], labels: list[str], batch_size: int = 32):
        if not prompts:
            raise InputError("--prompts: the file holds no prompt")
        self.texts, self.ids, self.labels, self.batch_size = prompts, ids, labels, batch_size
        self.units = np.arange(len(prompts))
        self.unit = "prompt"

    def prepare(self, lm) -> TargetLogprob:
        return self

    def describe(self) -> str:
        return (f"change in log p({' or '.join(map(repr, self.labels))}) right after each of {len(self.texts)} "
                "prompts; negative: the edit made the targets less likely")

    def score(self, lm, edits=()) -> np.ndarray:
        bound = bind_all(lm, edits)
        out = []
        for i in range(0, len(self.texts), self.batch_size):
            lp = torch.log_softmax(final_logits(lm, lm.tokenize(self.texts[i:i + self.batch_size]), bound).float(), -1)
            out.append(torch.logsumexp(lp[:, self.ids], -1).cpu().numpy())
        return np.concatenate(out)


class PairKL:
    """KL(negated || affirmed) of the next-token distributions at each pair's final token."""

    name = "pair-kl"

    def __init__(self, pairs: list[tuple[str, str]], batch_size: int = 64):
        self.pairs, self.batch_size = pairs, batch_size
        self.texts = [t for p in pairs for t in p]
        self.units = np.arange(len(pairs))
        self.unit = "pair"

    def prepare(self, lm) -> PairKL:
        return self

    def describe(self) -> str:
        return ("mean over pairs of the change in KL(negated || affirmed) at the final token "
                "(negative: the negated sentence's prediction moved toward the affirmed one's)")

    def score(self, lm, edits=()) -> np.ndarray:
        bound = bind_all(lm, edits)
        out = []
        for i in range(0, len(self.pairs), self.batch_size):
            chunk = self.pairs[i:i + self.batch_size]
            texts = [a for a, _ in chunk] + [n for _, n in chunk]
            lp = torch.log_softmax(final_logits(lm, lm.tokenize(texts), bound).float(), -1)
            out.append(kl(lp[len(chunk):], lp[:len(chunk)]).cpu().numpy())
        return np.concatenate(out)
