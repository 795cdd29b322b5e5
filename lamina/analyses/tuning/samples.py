"""Activations of a SampleSet's samples: the texts through the model, each sample's token positions pooled.

Shared by `lamina tune` (analyses/tuning/run.py) and the context lesson (analyses/tuning/context_lessons.py).
`ModelSamples` is the model side of the one interface `tune` reads (`stored_samples.StoredSamples` is the
store side):
    spec, tokenizer
    site_names(kind, layers)                  -> (layer indices, site names), checked
    activations(samples, sites, batch_size)   -> {site: float32 [n_samples, n_neurons]}
    token_values(samples, texts, site, neuron) -> [(token ids, values [n_tokens])] per text (heatmaps)
"""
from __future__ import annotations

import re

import numpy as np
import torch
from tqdm.auto import tqdm

from lamina.analyses.tuning.contrasts import SampleSet
from lamina.errors import InputError


def parse_layers(spec, n_layers: int) -> list[int]:
    """'0-29', '3,5,7', '0-3,10', 'all' or None (every layer) -> sorted layer indices."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "all")):
        return list(range(n_layers))
    if not isinstance(spec, str):
        out = sorted({int(x) for x in spec})
    else:
        out = set()
        for part in spec.replace(" ", "").split(","):
            m = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", part)
            if not m:
                raise InputError(f"--layers '{spec}': write a range 0-29, a list 3,5,7, or 'all'")
            lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
            out.update(range(lo, hi + 1))
        out = sorted(out)
    bad = [L for L in out if not 0 <= L < n_layers]
    if bad or not out:
        raise InputError(f"--layers '{spec}': this model has layers 0-{n_layers - 1}")
    return out


def gather_activations(lm, samples: SampleSet, sites, batch_size: int = 8, progress: bool = False) -> dict:
    """{site name: float32 array [n_samples, n_neurons]}: each sample's token positions, pooled by mean.

    Texts go through the model sorted by length, every site captured in one forward pass (early stop after
    the deepest). A batch holds up to `batch_size` x 128 padded tokens: `batch_size` texts of 128 tokens, more
    short ones (a forward pass on CPU costs about the same for 8 short texts as for 64). q/k/v are flattened
    to heads * d_head (neuron h*d_head + j).
    """
    rows = samples.rows
    sites = lm.sites(sites) if sites and isinstance(sites[0], str) else sites
    by_text = rows.groupby("text").indices
    lengths = {t: len(lm.tokenizer(samples.texts[t], truncation=True, max_length=samples.max_length)["input_ids"])
               for t in by_text}
    order = sorted(by_text, key=lambda t: lengths[t])
    chunks, budget = [[]], batch_size * 128
    for t in order:  # lengths ascending: the last text of a batch is its longest
        if chunks[-1] and (len(chunks[-1]) + 1) * lengths[t] > budget:
            chunks.append([])
        chunks[-1].append(t)
    n = len(rows)
    out: dict[str, np.ndarray] = {}
    positions = rows["positions"].tolist()
    for chunk in tqdm(chunks, desc="capture", unit="batch", disable=not progress):
        enc = lm.tokenizer([samples.texts[t] for t in chunk], padding=True, truncation=True,
                           max_length=samples.max_length, return_tensors="pt")
        mask = enc["attention_mask"]
        acts = lm.capture({"input_ids": enc["input_ids"].to(lm.device), "attention_mask": mask.to(lm.device)}, sites)
        owner, b_idx, t_idx, local = [], [], [], []
        for b, t in enumerate(chunk):
            real = mask[b].nonzero().flatten()  # positions of real tokens (left or right padding)
            for s in by_text[t]:
                local.append(s)
                for p in positions[s]:
                    owner.append(len(local) - 1)
                    b_idx.append(b)
                    t_idx.append(int(real[p]))
        owner_t = torch.as_tensor(owner)
        counts = torch.bincount(owner_t, minlength=len(local)).float()[:, None]
        for site in sites:
            a = acts[site.name].flatten(2).float()                    # [batch, tokens, width]
            vals = a[torch.as_tensor(b_idx), torch.as_tensor(t_idx)]  # [m, width]
            pooled = torch.zeros(len(local), a.shape[-1]).index_add_(0, owner_t, vals.cpu()) / counts
            if site.name not in out:
                out[site.name] = np.empty((n, a.shape[-1]), dtype=np.float32)
            out[site.name][local] = pooled.numpy()
    return out


class ModelSamples:
    """Sample activations computed by running the model over the samples' texts."""

    def __init__(self, lm):
        self.lm, self.spec, self.tokenizer = lm, lm.spec, lm.tokenizer

    def site_names(self, kind: str, layers) -> tuple[list[int], list[str]]:
        layer_ids = parse_layers(layers, self.lm.n_layers)
        return layer_ids, [s.name for s in self.lm.sites([f"{kind}.{L}" for L in layer_ids])]  # SiteError

    def activations(self, samples: SampleSet, sites, batch_size: int = 8, progress: bool = False) -> dict:
        return gather_activations(self.lm, samples, sites, batch_size, progress)

    def token_values(self, samples: SampleSet, texts: list[int], site: str, neuron: int) -> list:
        """[(token ids, float values [n_tokens])] of one neuron over each of `texts` (indices), as tuned."""
        enc = self.tokenizer([samples.texts[t] for t in texts], padding=True, truncation=True,
                             max_length=samples.max_length, return_tensors="pt")
        a = self.lm.capture(self.lm.inputs(enc["input_ids"], enc["attention_mask"]), [site])[site]
        a = a.flatten(2)[..., neuron].float().cpu().numpy()                 # [batch, tokens]
        out = []
        for b in range(len(texts)):
            real = enc["attention_mask"][b].nonzero().flatten().numpy()
            out.append((enc["input_ids"][b, real].tolist(), a[b, real]))
        return out


def samples_source(lm_or_source):
    """A LanguageModel wrapped as `ModelSamples`; a samples source (ModelSamples, StoredSamples) as it is."""
    return lm_or_source if hasattr(lm_or_source, "token_values") else ModelSamples(lm_or_source)
