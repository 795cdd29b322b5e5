"""The null check behind docs/TUNING.md: does the count of significant neurons stay at chance when the labels
carry no signal, at the real unit of replication? And what do the real nouns-vs-verbs labels keep?

    python examples/tuning_null_check.py [--max-tokens 30000] [--layers 0,5,10,13,15,20,25,29] [--permutations 50]

One capture of the nouns-verbs samples (every spaCy NOUN / VERB word of corpus paragraphs adding up to
--max-tokens model tokens; all words, no per-group cap), then for each labelling the count of BH-significant
mlp_post neurons per layer (q < 0.05 within each layer) under three tests:
    clustered   lamina's default: OLS with two-way cluster-robust SEs by word type x paragraph, CR2 with
                Bell-McCaffrey df (lamina.stats.clustered)
    CR1         the same regression with the old CRV1 SEs and G-1 df
    occurrence  the oldest default: Welch's t, every occurrence independent (`lamina tune --unit occurrence`)
Labellings: the real labels; one random label per word type (3 seeds); a rare random class (2% of the word
types, 3 seeds); one random label per paragraph (3 seeds); and the real labels on a random-weights model of
the same shape (lamina.models.random_like).
The real labels also get both tests' permutation nulls (labels permuted among word types; over occurrences).
Writes a JSON and a markdown table to --out.
"""
import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

import lamina
from lamina.analyses.sources.model import ModelSource
from lamina.analyses.tuning.contrasts import nouns_verbs
from lamina.analyses.tuning.run import design_for
from lamina.models import random_like
from lamina.sites import parse_layers
from lamina.stats import count_per_layer, label_draws, null_band, null_pvalues, primary_test
from lamina.stats.nulls import null_counts

ap = argparse.ArgumentParser()
ap.add_argument("--max-tokens", type=int, default=30000)
ap.add_argument("--layers", default="0,5,10,13,15,20,25,29")
ap.add_argument("--permutations", type=int, default=50)
ap.add_argument("--site", default="mlp_post")
ap.add_argument("--out", default="lamina-out/tuning-null-check")
ap.add_argument("--model", default=None, help="Model spec (default: the embedded model).")
ap.add_argument("--cache", default=None, help="Folder to keep the captured activations in (a re-run reuses them).")
args = ap.parse_args()

lm = lamina.load(args.model) if args.model else lamina.load()
samples = nouns_verbs(lm.tokenizer, max_tokens=args.max_tokens)
layers = parse_layers(args.layers, lm.n_layers)
sites = lm.sites([f"{args.site}.{L}" for L in layers])
clustered = design_for(samples)
cr1 = dataclasses.replace(clustered, vcov="CR1")
occurrence = design_for(samples, "occurrence")
TESTS = {"clustered": clustered, "CR1": cr1, "occurrence": occurrence}
rows = samples.rows
print(f"{len(rows)} samples ({samples.group_sizes()}), units {samples.unit_counts()}", flush=True)


def counts(acts, y, design) -> list[int]:
    """BH-significant neurons per layer; the family is the tested neurons (lamina.stats.nulls' NaN-p rule)."""
    ps = [primary_test(acts[s.name], y, design)["p"].to_numpy() for s in sites]
    return [int(count_per_layer([p[~np.isnan(p)]], "layer", 0.05)[0]) for p in ps]


def random_per(column: str, seed: int, share=None) -> np.ndarray:
    levels = rows[column].unique()
    lab = dict(zip(levels, np.random.default_rng(seed).random(len(levels)) < (share or samples.y.mean())))
    return rows[column].map(lab).to_numpy(bool)


def null(acts, y, design, n) -> list[dict]:
    draws = label_draws(y, design, n, seed=0)
    out = []
    for s in sites:
        c, _ = null_counts([null_pvalues(acts[s.name], y, design, draws)], "layer", 0.05)
        out.append(null_band(c[:, 0], 0))
    return out


results = {"settings": vars(args) | {"n_samples": len(rows), "groups": samples.group_sizes(),
                                     "units": samples.unit_counts(), "layers": layers}}
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)


def capture(model, tag):
    """Activations of every site, cached as .npy under --cache when given."""
    cache = Path(args.cache) if args.cache else None
    files = {s.name: cache / f"{tag}_{s.name}_{args.max_tokens}.npy" for s in sites} if cache else {}
    if cache and all(f.exists() for f in files.values()):
        return {k: np.load(f) for k, f in files.items()}
    acts = ModelSource(model).activations(samples, model.sites([s.name for s in sites]), progress=True)
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        for k, f in files.items():
            np.save(f, acts[k])
    return acts


def save():
    (out / "null_check.json").write_text(json.dumps(results, indent=1))


acts = capture(lm, "real")
y = samples.y
results["real"] = {t: counts(acts, y, d) for t, d in TESTS.items()}
print("real", results["real"], flush=True)
for column, share in (("word_type", None), ("word_type", 0.02), ("paragraph", None)):
    for seed in (1, 2, 3):
        yr = random_per(column, seed, share)
        if yr.sum() < 3:
            continue
        key = f"random_per_{column}{'_rare' if share else ''}_seed{seed}"
        results[key] = {t: counts(acts, yr, d) for t, d in TESTS.items()}
        print(key, results[key], flush=True)
        save()
if args.permutations:
    results["null_clustered"] = null(acts, y, clustered, args.permutations)
    results["null_occurrence"] = null(acts, y, occurrence, args.permutations)
    print("nulls", [b["high"] for b in results["null_clustered"]], [b["high"] for b in results["null_occurrence"]],
          flush=True)
del acts
save()
rand = random_like(lm, seed=1)
acts = capture(rand, "random")
results["random_weights"] = {t: counts(acts, y, d) for t, d in TESTS.items()}
print("random weights", results["random_weights"], flush=True)

save()
width = acts[sites[0].name].shape[1]
lines = [f"| labels ({width} {args.site} neurons per layer) | test | " + " | ".join(f"L{L}" for L in layers) + " |",
         "| --- | --- | " + " | ".join("---" for _ in layers) + " |"]
for key, val in results.items():
    if isinstance(val, dict) and "clustered" in val:
        for test in TESTS:
            lines.append(f"| {key} | {test} | " + " | ".join(map(str, val[test])) + " |")
for key in ("null_clustered", "null_occurrence"):
    if key in results:
        lines.append(f"| {key} 97.5th pct | | " + " | ".join(f"{b['high']:g}" for b in results[key]) + " |")
(out / "null_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
