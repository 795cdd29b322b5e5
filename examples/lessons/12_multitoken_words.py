"""Lesson 12, multi-token words: the tokenizer splits many category words; which sub-token stands for the word?

Question: does reading a split word at its last, first or mean sub-token change which neurons are tuned?

    python examples/lessons/12_multitoken_words.py [--model M] [--quick] [--out DIR]

The split report lists every word that becomes several tokens (they are kept, never dropped silently;
written to split_report.csv). The same dental vs household contrast is then read at the last, the first,
and the mean of the sub-tokens; the figure is the count of significant neurons per layer for each reading.
"""
from common import Lesson

from lamina.analyses.tuning.contrasts import category
from lamina.analyses.tuning.run import tune


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    layers = L.layers(3)
    plt = L.plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    counts, nulls = {}, {}
    for pooling in ("last", "first", "mean"):
        samples = category(lm.tokenizer, word_pooling=pooling)
        if pooling == "last":
            samples.split_report.to_csv(L.out / "split_report.csv", index=False)
            n_split = len(samples.split_report)
        r = tune(lm, samples, site="mlp_post", layers=layers, permutations=L.permutations(3, 20), probes=False,
                 n_examples=0, progress=False, reference_permutations=0)
        counts[pooling] = dict(zip(r.laminar["layer"].tolist(), r.laminar["n_significant"].tolist()))
        nulls[pooling] = dict(zip(r.laminar["layer"].tolist(), r.laminar["null_count_high"].tolist()))
        ax.plot(r.laminar["layer"], r.laminar["n_significant"], "o-", label=f"{pooling} sub-token")
        print(f"{pooling:>5}: significant per layer", r.laminar["n_significant"].tolist())
    ax.plot(r.laminar["layer"], r.laminar["null_count_high"], "k:", label="null 95% high (mean sub-token)")
    ax.set_xlabel("layer")
    ax.set_ylabel("significant neurons (BH within layer)")
    ax.legend(fontsize=7)
    ax.set_title(f"{n_split} of {len(samples.rows)} words split into several tokens", fontsize=8)
    L.figure(fig, "pooling")
    return L.finish({"n_words": len(samples.rows), "n_split": n_split, "n_significant": counts,
                     "null_count_high": nulls},
                    look="split_report.csv (which words split) and whether the three readings' counts agree")


if __name__ == "__main__":
    main()
