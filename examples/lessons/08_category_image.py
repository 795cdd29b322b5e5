"""Lesson 8, category tuning: dental vs household words, as a words x neurons activation image.

Question: do some MLP neurons respond differently to dental words than to household words?

    python examples/lessons/08_category_image.py [--model M] [--quick] [--out DIR] [--layer L]

Each built-in word sits in a carrier sentence and is read at its last sub-token. lamina's test (OLS with
cluster-robust SEs by word type x paragraph, BH within the layer, a permutation null of the count) ranks the
layer's neurons; the image shows every word (rows, grouped by category) against the 20 neurons with the
largest positive and the 20 with the largest negative t (columns), z-scored per neuron, beside the same
image for 40 random neurons: the block structure is the tuning.
"""
import numpy as np
from common import Lesson

from lamina.analyses.sources.model import ModelSource
from lamina.analyses.tuning.contrasts import category
from lamina.analyses.tuning.run import describe_test, design_for
from lamina.models import random_like
from lamina.stats import correct_pvalues, permutation_null, primary_test


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--layer",), {"type": int, "default": None})])
    lm = L.lm
    layer = L.args.layer if L.args.layer is not None else L.middle_layer()
    samples = category(lm.tokenizer)
    # one pass over the texts: the activations feed both the test and the image (`tune` would read them again)
    site = f"mlp_post.{layer}"
    X = ModelSource(lm).activations(samples, [site])[site]
    y = samples.rows["label"].to_numpy(bool)
    design = design_for(samples)                       # word type x paragraph, as `lamina tune` does
    n = primary_test(X, y, design).assign(neuron=np.arange(X.shape[1]))
    n["significant"] = correct_pvalues(n["p"].to_numpy(), "fdr_bh", "model").reject   # one layer: its own family
    null = permutation_null(X, y, L.pick(5, 100), design=design)          # the count's null, same unit
    # the random-weights control: the same words, test and correction on a model of the same shape
    Xr = ModelSource(random_like(lm, seed=1)).activations(samples, [site])[site]
    n_random = int(correct_pvalues(primary_test(Xr, y, design)["p"].to_numpy(), "fdr_bh", "model").reject.sum())
    n = n.sort_values("t")
    k = L.pick(10, 20)
    cols = np.r_[n["neuron"].to_numpy()[-k:][::-1], n["neuron"].to_numpy()[:k]]
    order = np.argsort(~y, kind="stable")                                  # group A first
    Z = (X - X.mean(0)) / (X.std(0) + 1e-9)
    rng = np.random.default_rng(0)
    rand = rng.choice(X.shape[1], 2 * k, replace=False)
    plt = L.plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 5), layout="constrained")
    n_a = int(y.sum())
    for a, c, title in ((ax[0], cols, f"top {k} + / top {k} - neurons by t"), (ax[1], rand, f"{2 * k} random neurons")):
        im = a.imshow(Z[order][:, c], aspect="auto", cmap="coolwarm", vmin=-3, vmax=3, interpolation="nearest")
        a.axhline(n_a - 0.5, color="k", lw=1)
        a.set_title(f"mlp_post.{layer}: {title}", fontsize=8)
        a.set_xlabel("neuron")
        a.set_ylabel(f"{samples.groups[0]} (top) | {samples.groups[1]} (bottom) words")
    fig.colorbar(im, ax=ax, shrink=0.7, label="z-scored activation")
    L.figure(fig, "words_x_neurons", tight=False)   # constrained layout keeps the colour bar apart
    n_sig = int(n["significant"].sum())
    best = n.loc[n["t"].abs().idxmax()] if n_sig else None         # never a "best" neuron when none passes
    summary = {"layer": layer, "n_words": len(samples.rows), "groups": samples.groups,
               "n_significant": n_sig, "null_count_high": null.band[1], "null_p_value": null.p_value,
               "n_significant_random_weights": n_random,
               "n_neurons": X.shape[1], "best_neuron": f"mlp_post.{layer}:{int(best['neuron'])}" if n_sig else
               "none significant", "best_t": float(best["t"]) if n_sig else None,
               "test": describe_test(samples, design)}
    print(f"{summary['test']}; BH within the layer; {len(null.null_counts)} label permutations at the same unit")
    print(f"layer {layer}: {n_sig} of {X.shape[1]} significant (null 95% up to {null.band[1]:g}, p = "
          f"{null.p_value:.3g}); random-weights model: {n_random}")
    return L.finish(summary, look="the left image's two blocks (rows split by category) against the right "
                                  "image's noise; the count against its null and the random-weights model",
                    differs="the course ranked neurons by a t-test on every word as independent; lamina "
                            "clusters by word type x paragraph and states the null of the count")


if __name__ == "__main__":
    main()
