"""What a causal check of a tune run measures: one number per item, clean or under edits, and the item's unit.

    LabelledLoss(texts, rows, unit)    the next-token loss right after each sample's read token, on the
                                       contrast's own texts (default): items = samples, unit = a sample column;
                                       kind="kl": KL(clean || edited) at the read token (any sample)
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

    def prepare(self, lm) -> "LabelledLoss":
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
                out[rows] = -logp.gather(-1, nxt[:, None])[:, 0].cpu().numpy()
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
        bound = bind_all(lm, edits)
        by_text = self.items.groupby("text").indices
        order = list(by_text)
        unembed = lm.model.get_submodule(lm.anatomy.family.unembed)
        read = self.items["read"].to_numpy()
        for i in range(0, len(order), self.batch_size):
            chunk = order[i:i + self.batch_size]
            enc = lm.tokenizer([self._texts[t] for t in chunk], padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
            batch = lm.inputs(enc["input_ids"], enc["attention_mask"])
            ids = batch["input_ids"]
            h = run_capture(lm.model, lm.anatomy, ids, batch["attention_mask"], [Site("final_norm")],
                            edits=bound)["final_norm"]                      # [texts, tokens, d_model]
            rows, b_idx, pos = [], [], []
            for b, t in enumerate(chunk):
                real = enc["attention_mask"][b].nonzero().flatten()
                for s in by_text[t]:
                    rows.append(int(s))
                    b_idx.append(b)
                    pos.append(int(real[read[s]]))
            b_t, p_t = torch.as_tensor(b_idx), torch.as_tensor(pos)
            with torch.inference_mode():
                logp = torch.log_softmax(unembed(h[b_t, p_t]).float(), -1)     # [samples, vocab]
            nxt = ids[b_t.to(ids.device), (p_t + 1).clamp(max=ids.shape[1] - 1).to(ids.device)].to(logp.device)
            yield rows, logp, nxt


class TargetLogprob:
    """log of the total probability of the target tokens right after each prompt."""

    name = "target"

    def __init__(self, prompts: list[str], ids: list[int], labels: list[str], batch_size: int = 32):
        if not prompts:
            raise InputError("--prompts: the file holds no prompt")
        self.texts, self.ids, self.labels, self.batch_size = prompts, ids, labels, batch_size
        self.units = np.arange(len(prompts))
        self.unit = "prompt"

    def prepare(self, lm) -> "TargetLogprob":
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

    def prepare(self, lm) -> "PairKL":
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
