"""Lesson 11, token lengths: how long are the tokens, and do activations differ by token length?

Question: do MLP activations differ between short and long tokens?

    python examples/lessons/11_token_lengths.py [--model M] [--quick] [--out DIR]

Every corpus token is a sample; its label is its character length (spaces stripped). The figures: the
histogram of token lengths in the corpus slice, and per layer (three layers shown) the histograms of all
neurons' activations for tokens below, at and above the median length. The test is the partial correlation
of each neuron with length controlling for log corpus frequency (short tokens are frequent ones), with SEs
clustered by word type x paragraph; the count is set against a permutation null and a random-weights model.
"""
import numpy as np
from common import Lesson

from lamina.analyses.tuning.contrasts import token_length
from lamina.analyses.tuning.controls import run_controls
from lamina.analyses.tuning.run import tune
from lamina.sites import parse_layers


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    N = lm.n_layers
    layers = parse_layers(L.args.layers, N) if L.args.layers else sorted({0, N // 2, N - 1})
    samples = token_length(lm.tokenizer, max_tokens=L.pick(800, 6000), max_per_group=L.pick(400, 2000))
    result = tune(lm, samples, site="mlp_post", layers=layers, permutations=L.permutations(3, 30), n_examples=0,
                  progress=False)
    run_controls(lm, samples, result, site="mlp_post", layers=layers, permutations=L.permutations(3, 30))
    hist = result.lessons["histograms"]
    plt = L.plt()
    fig, ax = plt.subplots(1, 1 + len(layers), figsize=(4 * (1 + len(layers)), 3.2))
    lengths = samples.rows["char_len"].to_numpy()
    ax[0].hist(lengths, bins=np.arange(0.5, lengths.max() + 1.5), color="grey")
    ax[0].axvline(result.lessons["median_char_len"], color="C3", ls="--", label="median")
    ax[0].set_xlabel("token length (characters)")
    ax[0].set_ylabel("tokens")
    ax[0].legend(fontsize=7)
    for a, layer in zip(ax[1:], layers):
        for g, h in hist[hist["layer"] == layer].groupby("group", sort=False):
            a.plot((h["bin_left"] + h["bin_right"]) / 2, h["density"], label=g)
        a.set_yscale("log")
        a.set_title(f"mlp_post.{layer}", fontsize=8)
        a.set_xlabel("activation")
        a.legend(fontsize=6)
    L.figure(fig, "length_histograms")
    lam = result.laminar
    print(result.settings["statement"])
    summary = {"n_tokens": len(samples.rows), "median_char_len": result.lessons["median_char_len"],
               "group_sizes": result.lessons["group_sizes"], "layers": layers,
               "n_significant": lam["n_significant"].tolist(), "null_count_high": lam["null_count_high"].tolist(),
               "n_significant_occurrence": lam["n_significant_occurrence"].tolist(),
               "controls": result.controls.to_dict(orient="records"), "test": result.settings["test"]}
    return L.finish(summary, look="the length histogram's long right tail; whether the three length groups' "
                                  "activation histograms separate, layer by layer",
                    differs="the course correlated activation with length over tokens as independent; lamina "
                            "controls for log frequency and clusters by word type x paragraph")


if __name__ == "__main__":
    main()
