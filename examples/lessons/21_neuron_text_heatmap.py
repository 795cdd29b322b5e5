"""Lesson 21, a neuron's text heatmap: the corpus text coloured by one tuned neuron's activation.

Question: where in running text does a category-tuned neuron fire?

    python examples/lessons/21_neuron_text_heatmap.py [--model M] [--quick] [--out DIR] [--layer L]

The best dental-vs-household neuron of one layer (lamina's clustered test) is run over the built-in corpus;
its top windows (one per document) and a few random windows are drawn as text, each token's background
coloured by the activation (red high, blue low, the same scale for all).
"""
from common import Lesson, token_heatmap

from lamina.analyses.neurons.top_examples import top_examples
from lamina.analyses.tuning.contrasts import category
from lamina.analyses.tuning.run import tune
from lamina.data.corpus import load_corpus


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--layer",), {"type": int, "default": None})])
    lm = L.lm
    layer = L.args.layer if L.args.layer is not None else L.middle_layer()
    r = tune(lm, category(lm.tokenizer), site="mlp_post", layers=[layer], permutations=L.permutations(3, 20),
             probes=False,
             n_examples=0, progress=False, reference_permutations=0)
    best = r.neurons.loc[r.neurons["t"].abs().idxmax()]
    neuron = best["name"]
    significant = bool(best["significant"])       # the largest |t| is a "tuned" neuron only if it passes BH
    ex = top_examples(lm, [neuron], load_corpus(max_docs=L.pick(3, None)), k=4, before=L.pick(10, 16), after=5,
                      max_tokens=L.pick(600, 8000), progress=False).neurons[neuron]
    shown = ex["top"] + ex.get("random", [])[:2]
    vmax = max(abs(ex["max"] or 1.0), abs(ex["min"] or 0.0))
    plt = L.plt()
    fig, ax = plt.subplots(len(shown), 1, figsize=(10, 0.9 * len(shown) + 0.5))
    for a, e, kind in zip(ax, shown, ["top"] * len(ex["top"]) + ["random"] * 2):
        token_heatmap(a, e["tokens"], e["activations"], f"{kind}: {e['value']:.2f} at {e['token']!r}", vmax=vmax)
    fig.suptitle(f"{neuron} (t = {best['t']:.2f}, q = {best['q']:.2g}, higher for "
                 f"{'dental' if best['t'] > 0 else 'household'}" + ("" if significant else "; NOT significant") + ")",
                 fontsize=9)
    L.figure(fig, "text_heatmap")
    return L.finish({"neuron": neuron, "t": best["t"], "q": best["q"], "significant": significant,
                     "n_significant_in_layer": int(r.neurons["significant"].sum()), "max": ex["max"],
                     "mean": ex["mean"],
                     "top_tokens": [e["token"] for e in ex["top"]]},
                    look="whether the red tokens of the top windows are dental / household words or something else")


if __name__ == "__main__":
    main()
