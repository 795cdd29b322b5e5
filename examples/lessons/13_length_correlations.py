"""Lesson 13, length correlations across layers: the layer x r heatmap.

Question: in which layers do neurons correlate with token length, and how strongly?

    python examples/lessons/13_length_correlations.py [--model M] [--quick] [--out DIR]

For every layer, each neuron's Pearson r with token character length over corpus tokens: the heatmap holds
the histogram of r per layer (rows: layers, columns: r bins), beside the count of neurons significant in
the partial correlation (controlling for log frequency, clustered SEs) with the permutation null.
"""
import numpy as np
from common import Lesson, laminar_plot

from lamina.analyses.tuning.contrasts import token_length
from lamina.analyses.tuning.run import tune


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    samples = token_length(lm.tokenizer, max_tokens=L.pick(800, 6000), max_per_group=L.pick(400, 2000))
    layers = L.layers(3)
    result = tune(lm, samples, site="mlp_post", layers=layers, permutations=L.permutations(3, 20), n_examples=0,
                  progress=False)
    rh = result.lessons["r_histogram"]
    image = rh.pivot(index="layer", columns="bin_left", values="count")
    edges = list(image.columns) + [float(rh["bin_right"].max())]
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    im = a.imshow(np.log1p(image.to_numpy()), aspect="auto", origin="lower", cmap="viridis",
                  extent=[edges[0], edges[-1], image.index.min() - 0.5, image.index.max() + 0.5])
    a.set_xlabel("Pearson r of a neuron with token length")
    a.set_ylabel("layer")
    fig.colorbar(im, ax=a, label="log(1 + neurons)")
    laminar_plot(b, result, "partial r, clustered")
    b.legend(fontsize=7)
    L.figure(fig, "layer_x_r")
    q = result.lessons["r_quantiles"]
    print(q.round(3).to_string(index=False))
    summary = {"n_tokens": len(samples.rows), "r_quantiles": q.to_dict(orient="records"),
               "n_significant": result.laminar["n_significant"].tolist(),
               "null_count_high": result.laminar["null_count_high"].tolist(), "test": result.settings["test"]}
    return L.finish(summary, look="how wide each layer's band of r is (heatmap rows) and where the significant "
                                  "count leaves the null band")


if __name__ == "__main__":
    main()
