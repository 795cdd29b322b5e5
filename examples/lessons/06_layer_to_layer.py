"""Layer-to-layer displacement of a word's representation in the raw residual stream (embedded model).

    python examples/word_displacement.py [WORD]

For the word's last sub-token in a sentence: the cosine similarity between consecutive layers and the
relative step size |x_{L+1} - x_L| / |x_L|, read by hooks (every layer the same way, final norm excluded).
"""
import sys

import torch

import lamina

word = sys.argv[1] if len(sys.argv) > 1 else "bank"
sentence = f"She sat by the river {word} and watched the boats go past."
lm = lamina.load()
ids = lm.tokenizer(sentence)["input_ids"]
prefix = lm.tokenizer(sentence[: sentence.index(word) + len(word)])["input_ids"]
position = len(prefix) - 1  # the word's last sub-token
acts = lm.capture([sentence], ["embed", "resid_post"])
vectors = [acts["embed"][0, position]] + [acts[f"resid_post.{L}"][0, position] for L in range(lm.n_layers)]
print(f"'{word}' at token {position} ({lm.tokenizer.decode([ids[position]])!r}) of: {sentence}")
print(f"{'step':>10} {'cosine':>8} {'relative step':>14} {'norm':>10}")
for L in range(1, len(vectors)):
    a, b = vectors[L - 1], vectors[L]
    cos = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    step = ((b - a).norm() / a.norm()).item()
    print(f"{L - 1:>4} -> {L:<3} {cos:8.3f} {step:14.3f} {b.norm().item():10.4g}")
