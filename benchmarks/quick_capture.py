"""Quick capture-overhead check: lamina captures vs the bare forward, interleaved (usage: SPEC [REPEATS])."""
import statistics
import sys
import time

import torch

import lamina

torch.set_num_threads(2)
spec = sys.argv[1]
lm = lamina.load(spec)
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, 40000, (8, 128), generator=g)
mask = torch.ones_like(ids)
N = lm.n_layers
def bare():
    with torch.inference_mode():
        lm.model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
variants = {
    "bare": bare,
    "resid_post (all)": lambda: lm.capture({"input_ids": ids, "attention_mask": mask}, ["resid_post"]),
    "mlp_post (all)": lambda: lm.capture({"input_ids": ids, "attention_mask": mask}, ["mlp_post"]),
    "q,k,v (all)": lambda: lm.capture({"input_ids": ids, "attention_mask": mask}, ["q", "k", "v"]),
    "resid_post.2 (early stop)": lambda: lm.capture({"input_ids": ids, "attention_mask": mask}, ["resid_post.2"]),
}
for f in variants.values(): f()
times = {k: [] for k in variants}
for _r in range(int(sys.argv[2]) if len(sys.argv) > 2 else 7):
    for k, f in variants.items():
        t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
print(f"{spec}, batch 8x128, {N} layers, torch threads 2")
for k, v in times.items():
    ratios = [a / b for a, b in zip(v, times["bare"])]
    print(f"  {k:28s} median {statistics.median(v)*1000:7.1f} ms  x bare (paired median) {statistics.median(ratios):.3f}")
