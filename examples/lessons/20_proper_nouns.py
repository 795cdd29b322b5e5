"""Lesson 20, proper nouns: neurons that respond to spaCy PROPN words more than to common nouns.

Question: which layers hold neurons that tell proper nouns from common nouns, once length and frequency
are controlled?

    python examples/lessons/20_proper_nouns.py [--model M] [--quick] [--out DIR]

Proper nouns are often split into several tokens and are rarer, so the report's confound balance (mean
character length and log corpus frequency of the token read, per group) and the controlled count (the
contrast as a partial correlation controlling for both) matter here more than for nouns vs verbs. The
figure is the laminar count (clustered, occurrence-level and controlled) with the null band.
"""
from common import Lesson, laminar_plot

from lamina.analyses.tuning.contrasts import proper_nouns
from lamina.analyses.tuning.run import tune


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    samples = proper_nouns(lm.tokenizer, max_tokens=L.pick(2500, 15000), max_per_group=L.pick(60, 300))
    print(samples.describe(), *samples.notes, sep="\n")
    layers = L.layers(3)
    result = tune(lm, samples, site="mlp_post", layers=layers, rank_by=("mean_diff",),
                  permutations=L.permutations(3, 20),
                  n_examples=0, progress=False, probes=False)
    lam = result.laminar
    plt = L.plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    laminar_plot(ax, result, "clustered")
    ax.plot(lam["layer"], lam["n_significant_occurrence"], "x--", label="occurrences independent")
    ax.plot(lam["layer"], lam["n_significant_controlled"], "s:", label="controlled for length, frequency")
    ax.legend(fontsize=6)
    L.figure(fig, "proper_nouns_laminar")
    print(result.settings["statement"])
    summary = {"group_sizes": result.settings["group_sizes"], "confound_balance": result.settings["confound_balance"],
               "layers": lam["layer"].tolist(), "n_significant": lam["n_significant"].tolist(),
               "n_significant_occurrence": lam["n_significant_occurrence"].tolist(),
               "n_significant_controlled": lam["n_significant_controlled"].tolist(),
               "null_count_high": lam["null_count_high"].tolist(), "test": result.settings["test"]}
    return L.finish(summary, look="the confound balance in summary.json (proper nouns are longer and rarer) and "
                                  "how much of the count survives the controlled test")


if __name__ == "__main__":
    main()
