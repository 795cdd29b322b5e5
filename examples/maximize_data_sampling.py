"""Data sampling: the corpus windows that drive a neuron most, one per document, plus quantile samples.

    python examples/maximize_data_sampling.py

Streams part of the built-in corpus once (early stop after layer 15), then writes the neuron's HTML page
with each example's tokens coloured 0-10 by activation.
"""
from pathlib import Path

import lamina
from lamina.analyses.top_examples import top_examples
from lamina.data.corpus import load_corpus
from lamina.report.neuron_page import render_neuron_page

NEURON = "mlp_post.15:933"
lm = lamina.load()
result = top_examples(lm, [NEURON], load_corpus(), k=5, max_tokens=8000)
n = result.neurons[NEURON]
print(f"{NEURON}: {n['n_tokens']} tokens, max {n['max']:.3f}, mean {n['mean']:.3f}")
for e in n["top"]:
    left = "".join(e["tokens"][max(0, e["focus"] - 10):e["focus"]])
    print(f"  {e['value']:6.3f}  ...{left}[{e['token']}]   ({e['doc']})")
print("argmax token per batch:", [(t["token"], t["batches"]) for t in n["argmax_tally"][:8]])
for b in n["quantiles"][::3]:
    print(f"  quantile {b['q_lo']:.0%}-{b['q_hi']:.0%} ({b['lo']:.2f} to {b['hi']:.2f}):",
          [e["token"] for e in b["examples"]])
Path("neuron_example.html").write_text(render_neuron_page(result.model, n), encoding="utf-8")
print("wrote neuron_example.html")
