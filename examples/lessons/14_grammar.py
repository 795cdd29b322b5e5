"""Lesson 14, grammar tuning: which MLP neurons tell nouns from verbs, layer by layer.

Question: in which layers do MLP neurons separate nouns from verbs, beyond chance and beyond word identity?

    python examples/lessons/14_grammar.py [--model M] [--quick] [--out DIR]

Same as `lamina tune --contrast nouns-verbs --max-tokens 8000 --max-per-group 300`. Each spaCy NOUN / VERB
word of the built-in corpus is one sample, read at its last sub-token; two-way cluster-robust OLS (word
type x paragraph) per neuron, BH FDR within each layer, label permutations among word types for the null
of the count; the same on a random-weights model of the same shape. The figure is the laminar profile of
the count (clustered and occurrence-level) with the null band and the random-model control, and the best
neuron's held-out accuracy per layer against its null.
"""
from common import Lesson, laminar_plot

from lamina.analyses.tuning.contrasts import nouns_verbs
from lamina.analyses.tuning.controls import run_controls
from lamina.analyses.tuning.run import tune
from lamina.report.tuning_report import write_tuning


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    samples = nouns_verbs(lm.tokenizer, max_tokens=L.pick(1500, 8000), max_per_group=L.pick(80, 300))
    layers = L.layers(3)
    result = tune(lm, samples, site="mlp_post", layers=layers, rank_by=("mean_diff",),
                  permutations=L.permutations(3, 20),
                  n_examples=L.pick(1, 4), progress=False)
    run_controls(lm, samples, result, site="mlp_post", layers=layers, permutations=L.permutations(3, 20))
    write_tuning(result, L.out / "tune")
    lam, ctl = result.laminar, result.controls
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    laminar_plot(a, result, "clustered (lamina)")
    a.plot(lam["layer"], lam["n_significant_occurrence"], "x--", label="occurrences independent (course)")
    rnd = [c for c in ctl.columns if c.startswith("random") and "n_significant" in c]
    if rnd:
        a.plot(ctl["layer"], ctl[rnd[0]], "k:", label="random-weights model")
    a.legend(fontsize=6)
    b.plot(lam["layer"], lam["best_cv_balanced_accuracy"], "o-", label="best neuron, held-out")
    b.plot(lam["layer"], lam["best_cv_balanced_accuracy_null_max"], "k:", label="same, shuffled labels (max)")
    b.set_xlabel("layer")
    b.set_ylabel("balanced accuracy (folds by word type)")
    b.legend(fontsize=6)
    L.figure(fig, "grammar_laminar")
    print(result.settings["statement"])
    summary = {"n_samples": len(samples.rows), "group_sizes": result.settings["group_sizes"],
               "n_significant": lam["n_significant"].tolist(),
               "n_significant_occurrence": lam["n_significant_occurrence"].tolist(),
               "null_count_high": lam["null_count_high"].tolist(),
               "best_cv_balanced_accuracy": lam["best_cv_balanced_accuracy"].tolist(),
               "controls": ctl.to_dict(orient="records"), "test": result.settings["test"]}
    return L.finish(summary, look="the clustered count against its null band and the random model; how far the "
                                  "occurrence-level count sits above it",
                    differs="the course counted neurons with a t-test over word occurrences as independent "
                            "samples; frequent words repeat, so that count is inflated (docs/TUNING.md)")


if __name__ == "__main__":
    main()
