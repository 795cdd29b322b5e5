"""Causal checks: edit overhead as x bare forward (paired, interleaved in one process), and the batched
patching sweep against one patch per forward pass.

    .venv/bin/python benchmarks/causal_bench.py SPEC [REPEATS] [PATCH_LAYERS] [BATCHxTOKENS]

Prints a Markdown table for docs/BENCHMARKS.md. The bare forward and every edited forward compute the
logits of the same batch (default 8 x 128); ratios are medians of per-round ratios (rounds interleave the variants).
"""
import statistics
import sys
import time

import torch

import lamina
from lamina.analyses.causal.interventions import Ablate, Reference
from lamina.analyses.causal.patching import patch_pair
from lamina.edits import Edit, bind_all

torch.set_num_threads(2)
spec = sys.argv[1]
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
patch_layers = int(sys.argv[3]) if len(sys.argv) > 3 else 6
lm = lamina.load(spec)
L = lm.n_layers // 2
B, T = (int(x) for x in (sys.argv[4] if len(sys.argv) > 4 else "8x128").split("x"))
ids = torch.randint(0, 40000, (B, T), generator=torch.Generator().manual_seed(0))
batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
width = lm.capture(batch, [f"mlp_post.{L}"])[f"mlp_post.{L}"].shape[-1]
ref = Reference(f"mlp_post.{L}", torch.zeros(width), torch.zeros(T, width), torch.ones(T), torch.zeros(0, T, width), 1)
d = lm.anatomy.d_model
corrupt = torch.randn(B, T, d)
variants = {
    "zero 10 neurons (mlp_post)": [Edit(f"mlp_post.{L}", "zero", neurons=range(10))],
    "mean 10 neurons, position-matched": [Ablate(f"mlp_post.{L}", neurons=tuple(range(10)), positions=[1, 5], method="mean", reference=ref)],
    "zero all of mlp_post": [Edit(f"mlp_post.{L}", "zero")],
    "steer: add a vector (resid_post)": [Edit(f"resid_post.{L}", "add", value=torch.randn(d))],
    "patch all positions (resid_pre)": [Edit(f"resid_pre.{L}", "set", value=corrupt)],
    "zero a q head": [Edit(f"q.{L}", "zero", heads=[0])],
}
bound = {k: bind_all(lm, v) for k, v in variants.items()}


def bare():
    with torch.inference_mode():
        lm.model(**batch, use_cache=False)


def edited(edits):
    def run():
        from lamina.capture import Capture

        with torch.inference_mode(), Capture(lm.model, lm.anatomy, [], stop_early=False, edits=edits):
            lm.model(**batch, use_cache=False)
    return run


calls = {"bare forward (logits)": bare, **{k: edited(v) for k, v in bound.items()}}
calls["zero 10 neurons + capture resid_post (all layers)"] = lambda: lm.run(
    batch, edits=bound["zero 10 neurons (mlp_post)"], sites=["resid_post", "logits"], stop_early=False)
for f in calls.values():
    f()
times = {k: [] for k in calls}
for _ in range(repeats):
    for k, f in calls.items():
        t = time.perf_counter()
        f()
        times[k].append(time.perf_counter() - t)
print(f"### {spec}: edit overhead, batch {B} x {T}, edit at layer {L}, {repeats} interleaved rounds, torch threads 2\n")
print("| forward | median ms | x bare (paired median) |")
print("|---|---:|---:|")
for k, v in times.items():
    ratios = [a / b for a, b in zip(v, times["bare forward (logits)"])]
    print(f"| {k} | {statistics.median(v) * 1000:.1f} | {statistics.median(ratios):.3f} |")

clean, corrupt_text = "The door was open and the cat came in.", "The door was shut and the dog came in."
layers = list(range(patch_layers))
n = len(lm.tokenize(clean)["input_ids"][0])
rows = []
for bs in (1, 32, 128):
    t = time.perf_counter()
    r = patch_pair(lm, clean, corrupt_text, "resid_pre", layers, "kl", batch_size=bs)
    rows.append((bs, time.perf_counter() - t, r.raw))
print(f"\n### {spec}: patching sweep, {len(layers)} layers x {n} positions = {len(layers) * n} patches\n")
print("| patches per forward pass | seconds | x one-per-pass | max abs diff of metric |")
print("|---:|---:|---:|---:|")
for bs, sec, raw in rows:
    print(f"| {bs} | {sec:.1f} | {rows[0][1] / sec:.1f}x faster | {abs(raw - rows[0][2]).max():.2g} |")
