"""Lesson 5, token by token: how alike are two tokens' activation vectors in one layer?

Question: how similar are the MLP activation vectors of the tokens of one sentence, pair by pair?

    python examples/lessons/05_token_correlations.py [--model M] [--quick] [--out DIR] [--layer L]

One sentence through the model; at one layer, each token's mlp_post vector. The scatter puts two tokens'
activations neuron by neuron against each other; the matrix holds every token pair's Pearson r. The first
position (the attention sink, or BOS) has a vector unlike any other: it is shown, and the summary gives the
mean off-diagonal r with and without it.
"""
import numpy as np
from common import Lesson

TEXT = "The old lighthouse keeper did not expect visitors on a night like this."


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--layer",), {"type": int, "default": None})])
    lm = L.lm
    layer = L.args.layer if L.args.layer is not None else L.middle_layer()
    site = f"mlp_post.{layer}"
    ids = lm.tokenize([TEXT])["input_ids"][0].tolist()
    tokens = [lm.tokenizer.decode([i]) for i in ids]
    X = lm.capture([TEXT], [site])[site][0].float().numpy()              # [tokens, neurons]
    R = np.corrcoef(X)
    off = ~np.eye(len(R), dtype=bool)
    rest = off.copy()
    rest[0, :] = rest[:, 0] = False
    i, j = len(tokens) - 3, len(tokens) - 2                              # two content tokens late in the sentence
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.scatter(X[i], X[j], s=4, alpha=0.5)
    a.set_xlabel(f"token {i} {tokens[i]!r}")
    a.set_ylabel(f"token {j} {tokens[j]!r}")
    a.set_title(f"{site}: r = {R[i, j]:.2f} over {X.shape[1]} neurons", fontsize=8)
    im = b.imshow(R, cmap="coolwarm", vmin=-1, vmax=1)
    b.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
    b.set_yticks(range(len(tokens)), tokens, fontsize=6)
    fig.colorbar(im, ax=b, shrink=0.8, label="Pearson r")
    L.figure(fig, "two_tokens_and_matrix")
    summary = {"layer": layer, "tokens": tokens, "r_pair": R[i, j], "mean_r_offdiag": R[off].mean(),
               "mean_r_without_first": R[rest].mean(), "mean_r_first_vs_rest": R[0, 1:].mean()}
    print(f"{site}: mean r between tokens {summary['mean_r_offdiag']:.3f}; without position 0 "
          f"{summary['mean_r_without_first']:.3f}; position 0 vs the rest {summary['mean_r_first_vs_rest']:.3f}")
    return L.finish(summary, look="the first row/column of the matrix (position 0) against the rest; the "
                                  "scatter's diagonal trend")


if __name__ == "__main__":
    main()
