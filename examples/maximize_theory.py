"""Why gradient ascent needs re-scoring: soft vectors reach activations that no real prompt reaches.

    python examples/maximize_theory.py

Optimising the input embeddings of a neuron moves them off the token manifold: the optimised activation
climbs far above anything in the corpus, while the cosine of each vector to its nearest token stays well
below 1. Decoding each vector to that nearest token and running the model again gives the number a real
prompt gets. The projected variant runs every step on real tokens, so its activation needs no re-scoring.
"""
import lamina
from lamina.analyses.maximize import ascend, resolve_target

NEURON = "mlp_post.15:933"  # fires on the verb after a long subject: "the harbour that once sheltered ...[ is]"
lm = lamina.load()
target = resolve_target(lm, NEURON)
for projected in (False, True):
    run = ascend(lm, target, n_tokens=5, steps=100, seed=1, projected=projected)
    cosines = [round(row[0]["cosine"], 2) for row in run["decoded"]]
    print(f"{'projected' if projected else 'soft':9}: optimised {run['optimized_activation']:8.3f}, "
          f"re-scored on {run['text']!r}: {run['rescored_activation']:.3f}; cosine to nearest token {cosines}")
