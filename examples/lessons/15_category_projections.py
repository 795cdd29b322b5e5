"""Lesson 15, category-tuned neurons and their vocabulary projections: dental vs household words.

Question: which vocabulary tokens drive the strongest category neurons, and which next tokens do they promote?

    python examples/lessons/15_category_projections.py [--model M] [--quick] [--out DIR]

Find the neurons whose activation separates the built-in dental words from the household words (each word
in a carrier sentence), then project the strongest ones onto the vocabulary: which tokens drive them
(input side) and which next tokens they promote (output side). The figure shows, for the best neuron, the
top tokens of each view with their projection scores.
"""
from common import Lesson

from lamina.analyses.tuning.contrasts import category
from lamina.analyses.tuning.run import tune
from lamina.analyses.vocab.projections import project


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    layers = L.layers(3)
    result = tune(lm, category(lm.tokenizer), site="mlp_post", layers=layers, rank_by=("mean_diff",),
                  permutations=L.permutations(3, 20), n_examples=0, progress=False, reference_permutations=0)
    print(result.settings["statement"])
    best = result.top.iloc[0]
    n_sig = int(result.neurons["significant"].sum())
    if not n_sig:   # never call a neuron "best" or "tuned" when none passes the test
        print("no neuron passes BH in any layer: the projections below are of the largest |t|, not of a tuned neuron")
    tables = {}
    for row in result.top.head(3).itertuples():
        print(f"\n{row.name}: t = {row.t:.2f}, q = {row.q:.2g}, CV balanced accuracy {row.cv_balanced_accuracy:.2f}")
        df = project(lm, row.name, k=8)
        tables[row.name] = df
        for (side, view, direction), g in df.groupby(["side", "view", "direction"], sort=False):
            print(f"  {side:6} {view:22} {direction:10}", " ".join(repr(t) for t in g["token"]))
    df = tables[best["name"]]
    groups = list(df.groupby(["side", "view", "direction"], sort=False))
    plt = L.plt()
    fig, ax = plt.subplots(1, len(groups), figsize=(3 * len(groups), 3.2))
    ax = ax if len(groups) > 1 else [ax]
    score = [c for c in ("score", "value", "logit") if c in df.columns][0]
    for a, ((side, view, direction), g) in zip(ax, groups):
        a.barh(range(len(g))[::-1], g[score])
        a.set_yticks(range(len(g))[::-1], [repr(t)[:14] for t in g["token"]], fontsize=7)
        a.set_title(f"{side}: {view}\n{direction}", fontsize=7)
    fig.suptitle(f"{best['name']}: t = {best['t']:.2f}, q = {best['q']:.2g}"
                 + ("" if n_sig else " (none significant: the largest |t|)"), fontsize=9)
    L.figure(fig, "projections")
    df.to_csv(L.out / "projections.csv", index=False)
    return L.finish({"n_significant": n_sig, "layers": result.laminar["layer"].tolist(),
                     "n_significant_per_layer": result.laminar["n_significant"].tolist(),
                     "null_count_high": result.laminar["null_count_high"].tolist(),
                     "best_neuron": best["name"] if n_sig else "none significant", "strongest_neuron": best["name"],
                     "best_t": best["t"], "best_q": best["q"],
                     "top_neurons": result.top.head(3)[["name", "t", "q", "cv_balanced_accuracy"]]
                     .to_dict(orient="records"),
                     "projection": {f"{s}/{v}/{d}": g["token"].tolist() for (s, v, d), g in groups}},
                    look="whether the output-side tokens of the best dental/household neuron are themselves "
                         "dental or household words")


if __name__ == "__main__":
    main()
