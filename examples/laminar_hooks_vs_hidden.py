"""The hooks-vs-hidden-states laminar comparison on the embedded model, over a slice of the built-in corpus.

    python examples/laminar_hooks_vs_hidden.py

Both methods give the same per-layer curve until the last layer, where hidden_states[-1] (after the final
norm) drops by orders of magnitude: mixing the two methods compares a normalized layer with raw ones.
"""
import lamina
from lamina.analyses.profile import profile
from lamina.data.corpus import load_corpus

lm = lamina.load()
docs = load_corpus(max_docs=6)
hooks = profile(lm, docs, method="hooks", max_tokens=4000).table
hidden = profile(lm, docs, method="hidden-states", max_tokens=4000).table
print(f"{'layer':>5} {'hooks top|x|':>14} {'hidden top|x|':>14} {'hooks norm':>11} {'hidden norm':>12}")
for L in range(lm.n_layers):
    h, s = hooks.iloc[L], hidden.iloc[L]
    flag = "  <- hidden_states[-1] is after model.norm" if s["normalized"] else ""
    print(f"{L:5d} {h['top1_abs']:14.4g} {s['top1_abs']:14.4g} {h['mean_token_norm']:11.4g} {s['mean_token_norm']:12.4g}{flag}")
