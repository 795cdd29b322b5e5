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

from lamina.analyses.contrasts import category
from lamina.analyses.sample_activations import gather_activations
from lamina.analyses.tuning import tune


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--layer",), {"type": int, "default": None})])
    lm = L.lm
    layer = L.args.layer if L.args.layer is not None else L.middle_layer()
    samples = category(lm.tokenizer)
    result = tune(lm, samples, site="mlp_post", layers=[layer], permutations=L.pick(5, 100), probes=False,
                  n_examples=0, progress=False, reference_permutations=0)
    site = lm.sites([f"mlp_post.{layer}"])
    X = gather_activations(lm, samples, site)[f"mlp_post.{layer}"]
    n = result.neurons.sort_values("t")
    k = L.pick(10, 20)
    cols = np.r_[n["neuron"].to_numpy()[-k:][::-1], n["neuron"].to_numpy()[:k]]
    order = np.argsort(~samples.rows["label"].to_numpy(bool), kind="stable")       # group A first
    Z = (X - X.mean(0)) / (X.std(0) + 1e-9)
    rng = np.random.default_rng(0)
    rand = rng.choice(X.shape[1], 2 * k, replace=False)
    plt = L.plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 5))
    n_a = int(samples.rows["label"].sum())
    for a, c, title in ((ax[0], cols, f"top {k} + / top {k} - neurons by t"), (ax[1], rand, f"{2 * k} random neurons")):
        im = a.imshow(Z[order][:, c], aspect="auto", cmap="coolwarm", vmin=-3, vmax=3, interpolation="nearest")
        a.axhline(n_a - 0.5, color="k", lw=1)
        a.set_title(f"mlp_post.{layer}: {title}", fontsize=8)
        a.set_xlabel("neuron")
        a.set_ylabel(f"{samples.groups[0]} (top) | {samples.groups[1]} (bottom) words")
    fig.colorbar(im, ax=ax, shrink=0.7, label="z-scored activation")
    L.figure(fig, "words_x_neurons")
    lam = result.laminar.iloc[0]
    summary = {"layer": layer, "n_words": len(samples.rows), "groups": samples.groups,
               "n_significant": lam["n_significant"], "null_count_high": lam["null_count_high"],
               "n_neurons": lam["n_neurons"], "best_neuron": lam["best_neuron"], "best_t": lam["best_t"],
               "best_cv_balanced_accuracy": lam["best_cv_balanced_accuracy"], "test": result.settings["test"],
               "statement": result.settings["statement"]}
    print(result.settings["statement"])
    print(f"layer {layer}: {summary['n_significant']} of {summary['n_neurons']} significant "
          f"(null 95% up to {summary['null_count_high']})")
    return L.finish(summary, look="the left image's two blocks (rows split by category) against the right "
                                  "image's noise; the count against its null",
                    differs="the course ranked neurons by a t-test on every word as independent; lamina "
                            "clusters by word type x paragraph and states the null of the count")


if __name__ == "__main__":
    main()
