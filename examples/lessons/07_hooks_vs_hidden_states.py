"""The founding lesson: hooks vs hidden states, on the embedded model and on GPT-2's shape.

    python examples/seed_lesson.py

1. A hook on block L equals output.hidden_states[L+1] exactly for every block but the last.
2. For the last block they differ: hidden_states[-1] is after the final norm.
3. Pushing the hook's value through the final norm closes the difference to zero.
4. The raw residual stream's magnitudes against the normalized last layer.
"""
import torch

import lamina

TEXT = ["The old lighthouse keeper did not expect visitors on a night like this."]

for spec in ("smollm2-135m", "random:gpt2"):
    lm = lamina.load(spec)
    N = lm.n_layers
    acts = lm.capture(TEXT, ["resid_post", "hidden"])
    penultimate = (acts[f"resid_post.{N - 2}"] - acts[f"hidden.{N - 1}"]).abs().max().item()
    final_raw = (acts[f"resid_post.{N - 1}"] - acts[f"hidden.{N}"]).abs().max().item()
    norm = lm.model.get_submodule(lm.anatomy.family.final_norm)
    with torch.inference_mode():
        final_normed = (norm(acts[f"resid_post.{N - 1}"]) - acts[f"hidden.{N}"]).abs().max().item()
    print(f"\n== {spec} ({N} blocks, final norm {lm.anatomy.family.final_norm})")
    print(f"block {N - 2} hook vs hidden_states[{N - 1}]: max |diff| = {penultimate:.3g}   (zero)")
    print(f"block {N - 1} hook vs hidden_states[{N}]:   max |diff| = {final_raw:.4g}   (nonzero)")
    print(f"block {N - 1} hook through the final norm:  max |diff| = {final_normed:.3g}   (zero again)")
    print("max |x| per layer, raw residual stream (hooks):")
    print("  " + " ".join(f"{acts[f'resid_post.{L}'].abs().max().item():.3g}" for L in range(N)))
    print(f"max |x| of hidden_states[-1] (after the final norm): {acts[f'hidden.{N}'].abs().max().item():.3g}")
