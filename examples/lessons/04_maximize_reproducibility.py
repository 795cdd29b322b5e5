"""Lesson 4, reproducibility of gradient ascent: the same neuron from several random starts.

Question: does gradient ascent find the same input for a neuron from different random starts?

    python examples/lessons/04_maximize_reproducibility.py [--model M] [--quick] [--out DIR]

Few shared tokens (low Jaccard) and low cosine between the optimised vectors mean each seed found its
own solution; the spread of the re-scored activations says how much any single run can be trusted.
"""
from common import Lesson

from lamina.analyses.neurons.maximize import maximize


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    result = maximize(L.lm, L.default_neuron(), seeds=L.pick(2, 3), steps=L.pick(8, 50), progress=False)
    for run in result.runs:
        print(f"seed {run['seed']}: {run['text']!r:45} optimised {run['optimized_activation']:8.2f} "
              f"re-scored {run['rescored_activation']:6.3f}")
    rep = result.reproducibility
    print(f"{rep['unique_tokens']} unique decoded tokens over {rep['n_seeds']} seeds; mean Jaccard "
          f"{rep['mean_jaccard']:.3f}, mean cosine {rep['mean_cosine']:.3f}")
    plt = L.plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    seeds = [run["seed"] for run in result.runs]
    ax.plot(seeds, [run["optimized_activation"] for run in result.runs], "o", label="optimised")
    ax.plot(seeds, [run["rescored_activation"] for run in result.runs], "s", label="re-scored")
    for run in result.runs:
        ax.annotate(run["text"][:18], (run["seed"], run["rescored_activation"]), fontsize=6)
    ax.set_xlabel("seed")
    ax.set_ylabel("activation")
    ax.set_title(f"Jaccard {rep['mean_jaccard']:.2f}, cosine {rep['mean_cosine']:.2f}", fontsize=8)
    ax.legend(fontsize=7)
    L.figure(fig, "seeds")
    return L.finish({"neuron": L.default_neuron(), "reproducibility": rep,
                     "runs": [{k: run[k] for k in ("seed", "text", "optimized_activation", "rescored_activation")}
                              for run in result.runs]},
                    look="the re-scored points spread over seeds and their different texts: low Jaccard")


if __name__ == "__main__":
    main()
