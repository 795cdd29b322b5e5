"""Lesson 6, layer to layer: how a token's residual stream changes from block to block, exactly.

Question: how much does each block change a token's hidden state, and is that change exactly attention + MLP?

    python examples/lessons/06_layer_to_layer.py [--model M] [--quick] [--out DIR] [--word WORD]

For the word's last sub-token in a sentence: the scatter of the hidden state at layer L against layer L+1
(coordinate by coordinate), the cosine and relative step |x_{L+1} - x_L| / |x_L| per block, and the exact
reconstruction H(L+1) = H(L) + attention delta + MLP delta (attn_out and mlp_out of block L+1, read by
hooks; sequential blocks such as Llama and GPT-2), whose largest error per block is plotted.
"""
import torch
from common import Lesson


def main(argv=None):
    L = Lesson(__doc__, __file__, argv, extra=[(("--word",), {"default": "bank"})])
    lm, word = L.lm, L.args.word
    sentence = f"She sat by the river {word} and watched the boats go past."
    prefix = lm.tokenize([sentence[: sentence.index(word) + len(word)]])["input_ids"][0]
    position = len(prefix) - 1                                            # the word's last sub-token
    acts = lm.capture([sentence], ["embed", "resid_post", "attn_out", "mlp_out"])
    N = lm.n_layers
    H = [acts["embed"][0, position].float()] + [acts[f"resid_post.{k}"][0, position].float() for k in range(N)]
    rows = []
    for k in range(1, N + 1):                                             # H[k] is block k-1's output
        a, b = H[k - 1], H[k]
        delta_attn = acts[f"attn_out.{k - 1}"][0, position].float()
        delta_mlp = acts[f"mlp_out.{k - 1}"][0, position].float()
        err = (a + delta_attn + delta_mlp - b).abs().max().item()
        rows.append({"block": k - 1, "cosine": torch.nn.functional.cosine_similarity(a, b, dim=0).item(),
                     "relative_step": ((b - a).norm() / a.norm()).item(), "norm": b.norm().item(),
                     "attn_delta_norm": delta_attn.norm().item(), "mlp_delta_norm": delta_mlp.norm().item(),
                     "reconstruction_max_abs_error": err, "relative_error": err / b.abs().max().item()})
        print(f"block {k - 1:2d}: cosine {rows[-1]['cosine']:.3f} step {rows[-1]['relative_step']:.3f} "
              f"|H + attn + mlp - H'|max {err:.2e}")
    mid = L.middle_layer()
    plt = L.plt()
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ax[0].scatter(H[mid].numpy(), H[mid + 1].numpy(), s=3, alpha=0.5)
    ax[0].set_xlabel(f"hidden state after block {mid - 1}" if mid else "embedding")
    ax[0].set_ylabel(f"after block {mid}")
    ax[0].set_title(f"{word!r}: cosine {rows[mid]['cosine']:.3f}", fontsize=8)
    blocks = [r["block"] for r in rows]
    ax[1].plot(blocks, [r["cosine"] for r in rows], "o-", label="cosine(H_L, H_L+1)")
    ax[1].plot(blocks, [r["relative_step"] for r in rows], "s-", label="relative step")
    ax[1].set_xlabel("block")
    ax[1].legend(fontsize=7)
    ax[2].semilogy(blocks, [max(r["relative_error"], 1e-12) for r in rows], "o-", label="reconstruction error")
    ax[2].semilogy(blocks, [r["attn_delta_norm"] / r["norm"] for r in rows], "--", label="|attn delta| / |H|")
    ax[2].semilogy(blocks, [r["mlp_delta_norm"] / r["norm"] for r in rows], ":", label="|MLP delta| / |H|")
    ax[2].set_xlabel("block")
    ax[2].set_title("H(L+1) = H(L) + attn + MLP: max |error| / max |H|", fontsize=8)
    ax[2].legend(fontsize=7)
    L.figure(fig, "layer_to_layer")
    worst = max(r["relative_error"] for r in rows)
    return L.finish({"word": word, "position": position, "blocks": rows, "max_relative_reconstruction_error": worst},
                    look="the reconstruction error at float precision in every block (the identity is exact); "
                         "cosine near 1 after the first blocks while the norm grows",
                    differs="the hidden state after the last block is read by a hook, not hidden_states[-1] "
                            "(that one is after the final norm: lesson 7)")


if __name__ == "__main__":
    main()
