"""Negative controls for `lamina tune`: what the same analysis finds where the answer is known to be weaker.

- **Random weights.** The same contrast, samples and settings on a random-weights model of the same
  architecture and shape (`lamina.models.random_like`, fixed seed). Per layer: its count of significant
  neurons, and the difference (real - random) tested against the same null labellings applied to both
  models (the seed fixes the draws): p = (1 + #{null difference >= observed}) / (1 + N).
- **Neutral insertion (negation).** A negation pair differs by an inserted word, so part of any
  "negation" effect is "a word was inserted". For the pairs whose negation is a pure insertion ("not",
  "never", "do not"), a third sentence puts a neutral adverb at the same place ("really"; "often" for
  "never"). Three paired tests on those pairs: negated vs affirmed (the real contrast), neutral vs
  affirmed (the insertion alone), and negated vs neutral (negation beyond insertion: the same token
  read, the same position).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lamina.analyses.tuning.contrasts import SampleSet, negation, read_pairs
from lamina.analyses.tuning.settings import TuneSettings

NEUTRAL = {"never": "often"}  # the neutral word per inserted negation; "really" otherwise


def neutral_triples(pairs) -> list[tuple[str, str, str]]:
    """(affirmed, negated, neutral) for the pairs whose negation is a pure word insertion."""
    out = []
    for aff, neg in pairs:
        a, n = aff.split(), neg.split()
        i = 0
        while i < min(len(a), len(n)) and a[i] == n[i]:
            i += 1
        j = 0
        while j < min(len(a), len(n)) - i and a[-1 - j] == n[-1 - j]:
            j += 1
        inserted = " ".join(n[i:len(n) - j])
        if i + j == len(a) and inserted:  # the affirmed sentence is the negated one minus the inserted words
            out.append((aff, neg, " ".join(n[:i] + [NEUTRAL.get(inserted, "really")] + n[len(n) - j:])))
    return out


def _count_diff(real, ctrl) -> pd.DataFrame:
    """Per layer: both counts, and the count difference against its null (the same draws for both)."""
    rows = []
    for j, L in enumerate(real.settings["layers"]):
        obs = int(real.laminar["n_significant"].iat[j] - ctrl.laminar["n_significant"].iat[j])
        row = {"layer": L, "n_significant": int(real.laminar["n_significant"].iat[j]),
               "n_significant_random_weights": int(ctrl.laminar["n_significant"].iat[j])}
        if len(real.null_counts) and len(ctrl.null_counts):
            diff = real.null_counts[:, j] - ctrl.null_counts[:, j]
            row["random_weights_null_high"] = float(np.percentile(ctrl.null_counts[:, j], 97.5))
            row["difference_p"] = float((1 + np.sum(diff >= obs)) / (1 + len(diff)))
        rows.append(row)
    return pd.DataFrame(rows)


def run_controls(lm, samples: SampleSet, result, settings: TuneSettings | None = None, *, pairs=None,
                 progress: bool = False, **options):
    """Run the negative controls and attach them to `result` (`result.controls`, one row per layer;
    `result.settings['controls']`, what was run). `settings` / `options`: the run's TuneSettings (or its
    fields by keyword), without probes, examples or reference permutations. Returns `result`."""
    from lamina.analyses.tuning.run import tune
    from lamina.models import random_like

    ts = dataclasses.replace(settings, **options) if settings is not None else TuneSettings(**options)
    ts = dataclasses.replace(ts, probes=False, reference_permutations=0, n_examples=0)
    seed = ts.seed
    rand = tune(random_like(lm, seed=seed + 1), samples, ts, progress=progress)  # seed + 1: never the model itself
    table = _count_diff(result, rand)
    described = [f"random weights: {rand.settings['model']}, the same samples and test"]
    if samples.contrast == "negation":
        triples = neutral_triples(read_pairs(pairs) if pairs is None or isinstance(pairs, str) else pairs)
        read = "final" if "final token" in samples.reading else "after-edit"
        runs = {"negated_vs_affirmed": [(a, n) for a, n, _ in triples],
                "neutral_vs_affirmed": [(a, u) for a, _, u in triples],
                "negated_vs_neutral": [(u, n) for _, n, u in triples]}
        for name, prs in runs.items():
            r = tune(lm, negation(lm.tokenizer, pairs=prs, read=read), ts, progress=progress)
            table[f"n_significant_{name}"] = r.laminar["n_significant"].to_numpy()
            table[f"null_high_{name}"] = r.laminar["null_count_high"].to_numpy() if "null_count_high" in r.laminar \
                else np.nan
        described.append(f"neutral insertion: {len(triples)} pairs whose negation is an inserted word, with "
                         "'really' ('often' for 'never') at its place; paired t of negated vs affirmed, neutral vs "
                         "affirmed, and negated vs neutral on those pairs")
    result.controls = table
    result.settings["controls"] = described
    return result
