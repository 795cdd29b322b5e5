"""Lesson 3, data sampling: the corpus windows that drive a neuron most, one per document, plus quantile samples.

Question: which real corpus tokens drive a neuron most, and what does its whole activation range look like?

    python examples/lessons/03_data_sampling.py [--model M] [--quick] [--out DIR]

Streams part of the built-in corpus once (early stop after the neuron's layer), then writes the neuron's
HTML page with each example's tokens coloured 0-10 by activation, and a figure of the top examples'
activations and the quantile bins.
"""
from common import Lesson

from lamina.analyses.neurons.top_examples import top_examples
from lamina.data.corpus import load_corpus
from lamina.report.neuron_page import render_neuron_page


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm, neuron = L.lm, L.default_neuron()
    result = top_examples(lm, [neuron], load_corpus(max_docs=L.pick(3, None)), k=5, max_tokens=L.pick(600, 8000))
    n = result.neurons[neuron]
    print(f"{neuron}: {n['n_tokens']} tokens, max {n['max']:.3f}, mean {n['mean']:.3f}")
    for e in n["top"]:
        left = "".join(e["tokens"][max(0, e["focus"] - 10):e["focus"]])
        print(f"  {e['value']:6.3f}  ...{left}[{e['token']}]   ({e['doc']})")
    page = L.out / "neuron.html"
    page.write_text(render_neuron_page(result.model, n), encoding="utf-8")
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.barh(range(len(n["top"]))[::-1], [e["value"] for e in n["top"]])
    a.set_yticks(range(len(n["top"]))[::-1], [repr(e["token"])[:14] for e in n["top"]], fontsize=7)
    a.set_xlabel("activation (top example per document)")
    q = n["quantiles"]
    b.errorbar(range(len(q)), [(x["lo"] + x["hi"]) / 2 for x in q], yerr=[(x["hi"] - x["lo"]) / 2 for x in q], fmt="o")
    b.set_xlabel("quantile bin")
    b.set_ylabel("activation range")
    L.figure(fig, "top_and_quantiles")
    return L.finish({"neuron": neuron, "n_tokens": n["n_tokens"], "max": n["max"], "mean": n["mean"],
                     "top": [{"value": e["value"], "token": e["token"]} for e in n["top"]],
                     "argmax_tally": n["argmax_tally"][:8]},
                    look="the top tokens (bars) and neuron.html: what the strongest windows share")


if __name__ == "__main__":
    main()
