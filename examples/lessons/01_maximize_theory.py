"""Lesson 1, activation maximization in theory: why gradient ascent needs re-scoring.

Question: does the activation that gradient ascent reaches on soft input vectors say what a real prompt does?

    python examples/lessons/01_maximize_theory.py [--model M] [--quick] [--out DIR]

Optimising the input embeddings of a neuron moves them off the token manifold: the optimised activation
climbs far above anything in the corpus, while the cosine of each vector to its nearest token stays well
below 1. Decoding each vector to that nearest token and running the model again gives the number a real
prompt gets. The projected variant runs every step on real tokens, so its activation needs no re-scoring.
"""
from common import Lesson

from lamina.analyses.neurons.maximize import ascend, resolve_target


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm, steps = L.lm, L.pick(8, 50)
    target = resolve_target(lm, L.default_neuron())
    runs = {}
    for projected in (False, True):
        run = ascend(lm, target, n_tokens=L.pick(3, 5), steps=steps, seed=1, projected=projected, progress=False)
        name = "projected" if projected else "soft"
        runs[name] = {"optimized": run["optimized_activation"], "rescored": run["rescored_activation"],
                      "text": run["text"], "cosine_to_nearest": [row[0]["cosine"] for row in run["decoded"]]}
        print(f"{name:9}: optimised {run['optimized_activation']:8.3f}, re-scored on {run['text']!r}: "
              f"{run['rescored_activation']:.3f}; cosine to nearest token "
              f"{[round(c, 2) for c in runs[name]['cosine_to_nearest']]}")
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    names = list(runs)
    a.bar([0, 1], [runs[n]["optimized"] for n in names], 0.38, label="optimised (soft vectors)")
    a.bar([0.4, 1.4], [runs[n]["rescored"] for n in names], 0.38, label="re-scored (decoded tokens)")
    a.set_xticks([0.2, 1.2], names)
    a.set_ylabel(f"activation of {target.name}")
    a.legend(fontsize=7)
    for _i, n in enumerate(names):
        b.plot(runs[n]["cosine_to_nearest"], "o-", label=n)
    b.axhline(1, color="k", lw=0.5)
    b.set_xlabel("input position")
    b.set_ylabel("cosine to nearest token")
    b.legend(fontsize=7)
    L.figure(fig, "optimised_vs_rescored")
    gap = runs["soft"]["optimized"] - runs["soft"]["rescored"]
    return L.finish({"neuron": target.name, "steps": steps, "runs": runs, "soft_gap": gap},
                    look="the soft run's optimised bar far above its re-scored bar; cosines well below 1")


if __name__ == "__main__":
    main()
