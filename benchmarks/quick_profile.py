"""Quick end-to-end check: lamina profile vs the bare forward over the same batches (usage: SPEC TOKENS)."""
import sys
import time

import torch

import lamina
from lamina.analyses.profile.laminar import profile
from lamina.data.corpus import load_corpus
from lamina.data.windows import batches, corpus_windows

torch.set_num_threads(2)
lm = lamina.load(sys.argv[1]); docs = load_corpus(); T = int(sys.argv[2])
ws = corpus_windows(lm, docs, 128, max_tokens=T)
bs = list(batches(ws, 8, lm.tokenizer.pad_token_id))
res = {"bare": [], "profile": []}
for _r in range(2):
    t = time.perf_counter()
    with torch.inference_mode():
        for b in bs: lm.model.base_model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
    res["bare"].append(time.perf_counter() - t)
    t = time.perf_counter(); profile(lm, docs, max_tokens=T, progress=False); res["profile"].append(time.perf_counter() - t)
n = sum(b.n_tokens for b in bs)
for k, v in res.items(): print(f"{sys.argv[1]} {k}: {min(v):.1f} s, {n/min(v):.0f} tokens/s")
print("profile / bare tokens/s:", round(min(res["bare"]) / min(res["profile"]), 3))
