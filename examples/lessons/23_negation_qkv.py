"""Lesson 23, negation in attention: the matched pairs read at the query, key and value neurons of every layer.

Question: do attention's query, key or value coordinates carry negation, and in which layers?

    python examples/lessons/23_negation_qkv.py [--model M] [--quick] [--out DIR]

A Q/K/V neuron is one coordinate of one head (index h * d_head + j). SmolLM2 has 9 query heads and 3
key/value heads of 64 dimensions: 576 query neurons and 192 key and value neurons per layer. The figures are
the laminar plots (fraction significant per layer, paired t, BH within each layer, with the null band) and
the best neuron's held-out balanced accuracy per layer, for q, k and v.
"""
from common import Lesson

from lamina.analyses.tuning.contrasts import negation
from lamina.analyses.tuning.controls import run_controls
from lamina.analyses.tuning.run import tune


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    samples = negation(lm.tokenizer, max_per_group=L.pick(40, None))
    layers = L.layers(4)
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    out = {}
    for site in ("q", "k", "v"):
        r = tune(lm, samples, site=site, layers=layers, permutations=L.permutations(3, 20), probes=False, n_examples=0,
                 progress=False, reference_permutations=0)
        # the controls lesson 22 shows the pairs need: a neutral word inserted instead, and random weights
        run_controls(lm, samples, r, site=site, layers=layers, permutations=L.permutations(3, 20), probes=False)
        lam = r.laminar
        best = [f"{L_}:{n}" if k > 0 else "none significant"
                for L_, n, k in zip(lam["layer"], lam["best_neuron"], lam["n_significant"])]
        print(f"{site}: {r.settings['family_description']}")
        print("  fraction significant per layer:", " ".join(f"{f:.2f}" for f in lam["fraction_significant"]))
        print("  best neuron per layer:", " | ".join(best))
        a.plot(lam["layer"], lam["fraction_significant"], "o-", ms=3, label=site)
        a.fill_between(lam["layer"], lam["null_low"] / lam["n_tested"], lam["null_high"] / lam["n_tested"], alpha=0.15)
        b.plot(lam["layer"], lam["best_cv_balanced_accuracy"], "o-", ms=3, label=site)
        out[site] = {"fraction_significant": lam["fraction_significant"].round(4).tolist(), "best_neuron": best,
                     "best_cv_balanced_accuracy": lam["best_cv_balanced_accuracy"].round(3).tolist(),
                     "n_neurons": int(lam["n_neurons"].iloc[0]),
                     "n_significant": lam["n_significant"].tolist(), "null_count_high": lam["null_count_high"].tolist(),
                     "controls": r.controls.to_dict(orient="records")}
    a.set_xlabel("layer")
    a.set_ylabel("fraction significant (band: null 95%)")
    a.legend(fontsize=7)
    b.axhline(0.5, color="k", lw=0.5)
    b.set_xlabel("layer")
    b.set_ylabel("best neuron: held-out balanced accuracy")
    b.legend(fontsize=7)
    L.figure(fig, "qkv_laminar")
    return L.finish({"layers": lam["layer"].tolist(), "sites": out, "test": r.settings["test"]},
                    look="which of q, k, v leaves its null band first, and the accuracies against 0.5",
                    differs="the course printed a best neuron for every layer; lamina says 'none significant' "
                            "where no neuron passes BH")


if __name__ == "__main__":
    main()
