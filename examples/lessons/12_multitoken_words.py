"""Multi-token words: the tokenizer splits many category words; which sub-token should stand for the word?

    python examples/tuning_multitoken_words.py

The split report lists every word that becomes several tokens (they are kept, never dropped silently).
The same contrast is then read at the last, the first, and the mean of the sub-tokens.
"""
import lamina
from lamina.analyses.contrasts import category
from lamina.analyses.tuning import tune

lm = lamina.load()
for pooling in ("last", "first", "mean"):
    samples = category(lm.tokenizer, word_pooling=pooling)
    if pooling == "last":
        print(samples.split_report.to_string(index=False))
    r = tune(lm, samples, site="mlp_post", probes=False, n_examples=0, progress=False)
    print(f"{pooling:>5}: significant per layer", r.laminar["n_significant"].tolist(),
          f"(null total 95% up to {r.settings['null_total']['high']:g})")
