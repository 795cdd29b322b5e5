"""Lesson 7, the founding lesson: hooks vs hidden states.

Question: is output.hidden_states[L+1] the output of block L for every block, including the last?

    python examples/lessons/07_hooks_vs_hidden_states.py [--model M] [--quick] [--out DIR]

1. A hook on block L equals output.hidden_states[L+1] exactly for every block but the last.
2. For the last block they differ: hidden_states[-1] is after the final norm.
3. Pushing the hook's value through the final norm closes the difference to zero.
4. The laminar profile over a corpus slice: both methods give the same per-layer curve until the last
   layer, where hidden_states[-1] drops by orders of magnitude: mixing the two methods compares a
   normalized layer with raw ones.
"""
import numpy as np
import torch
from common import Lesson

from lamina.analyses.profile.laminar import profile
from lamina.data.corpus import load_corpus

TEXT = ["The old lighthouse keeper did not expect visitors on a night like this."]


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm = L.lm
    N = lm.n_layers
    acts = lm.capture(TEXT, ["resid_post", "hidden"])
    diffs = [(acts[f"resid_post.{k}"] - acts[f"hidden.{k + 1}"]).abs().max().item() for k in range(N)]
    norm = lm.model.get_submodule(lm.anatomy.family.final_norm)
    with torch.inference_mode():
        final_normed = (norm(acts[f"resid_post.{N - 1}"]) - acts[f"hidden.{N}"]).abs().max().item()
    print(f"max |hook - hidden_states[L+1]| per block: {[f'{d:.2g}' for d in diffs]}")
    print(f"last block through {lm.anatomy.family.final_norm}: {final_normed:.2g}")
    docs = load_corpus(max_docs=L.pick(2, 6))
    n_tok = L.pick(300, 4000)
    hooks = profile(lm, docs, method="hooks", max_tokens=n_tok, progress=False).table
    hidden = profile(lm, docs, method="hidden-states", max_tokens=n_tok, progress=False).table
    hidden = hidden[hidden["site"].str.startswith("hidden")]              # drop the extra raw row it adds
    plt = L.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.semilogy(hooks["layer"], hooks["top1_abs"], "o-", label="hooks (block output)")
    a.semilogy(hidden["layer"], hidden["top1_abs"], "x--", label="hidden_states[L+1]")
    a.set_xlabel("layer")
    a.set_ylabel("largest |activation|")
    a.legend(fontsize=7)
    a.set_title("laminar profile: the last layer differs", fontsize=8)
    b.semilogy(range(N), np.maximum(diffs, 1e-12), "o-")
    b.axhline(max(final_normed, 1e-12), color="C2", ls="--", label="last hook through the final norm")
    b.set_xlabel("block")
    b.set_ylabel("max |hook - hidden_states[L+1]|")
    b.legend(fontsize=7)
    L.figure(fig, "hooks_vs_hidden")
    return L.finish({"per_block_max_abs_diff": diffs, "last_block_after_final_norm": final_normed,
                     "hooks_top1_abs": hooks["top1_abs"].tolist(), "hidden_top1_abs": hidden["top1_abs"].tolist(),
                     "hidden_last_normalized": bool(hidden["normalized"].iloc[-1])},
                    look="zero difference for every block but the last; the last layer's drop in the hidden-states "
                         "curve, closed by the final norm")


if __name__ == "__main__":
    main()
