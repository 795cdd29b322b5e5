"""Negation in attention: the same matched pairs, read at the query, key and value neurons of every layer.

    python examples/tuning_negation_qkv.py

A Q/K/V neuron is one coordinate of one head (index h * d_head + j). SmolLM2 has 9 query heads and 3
key/value heads of 64 dimensions: 576 query neurons and 192 key and value neurons per layer.
"""
import lamina
from lamina.analyses.contrasts import negation
from lamina.analyses.tuning import tune

lm = lamina.load()
samples = negation(lm.tokenizer)
for site in ("q", "k", "v"):
    r = tune(lm, samples, site=site, permutations=50, probes=False, n_examples=0, progress=False)
    print(f"{site}: {r.settings['family_description']}")
    print("  fraction significant per layer:", " ".join(f"{f:.2f}" for f in r.laminar["fraction_significant"]))
    print("  best neuron per layer:", " ".join(f"{L}:{n}" for L, n in zip(r.laminar["layer"], r.laminar["best_neuron"])))
