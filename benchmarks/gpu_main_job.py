"""The main job on a CUDA GPU (verify, a laminar profile, a small extract), checked against the CPU.

    python benchmarks/gpu_main_job.py [--model smollm2-135m] [--max-tokens 8192] [--out FILE.json]

Where no CUDA device is available it prints one line saying so and exits 0. Otherwise it loads the model on
the GPU, runs `verify` (must be ok), profiles `resid_post` over the built-in corpus and extracts two sites,
then runs the same profile and extract with the model on the CPU and compares: the statistics must agree to
a relative 1e-3 (float32 on both; TF32 stays off, PyTorch's default) and the stored activations to 1e-3 of
their scale. Prints the times and tokens/s of both; exits 1 if anything disagrees.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np
import torch

import lamina
from lamina.analyses.profile.laminar import profile
from lamina.data.corpus import load_corpus
from lamina.extract import extract

COLUMNS = ["mean", "std", "mean_token_norm", "median_abs", "top1_abs"]
SITES = ["resid_post.0", "mlp_post.1"]


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - t0


def run(lm, docs, max_tokens: int, folder: str) -> dict:
    prof, prof_s = timed(profile, lm, docs, "resid_post", max_tokens=max_tokens, progress=False)
    store, ext_s = timed(extract, lm, docs, SITES, folder, context=128, dtype="float32", max_tokens=max_tokens,
                         progress=False)
    n = int(prof.table["n_tokens"].iloc[0])
    return {"profile": prof, "store": store, "n_tokens": n, "profile_s": prof_s, "extract_s": ext_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-tokens", type=int, default=8192)
    parser.add_argument("--out", default=None, help="write the measurements as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"skip: no CUDA device here (torch {torch.__version__}, cuda.is_available() is False); "
              "this script checks the main job on a GPU")
        return 0

    docs = load_corpus()
    gpu_lm, load_s = timed(lamina.load, args.model, device="cuda")
    report, verify_s = timed(lamina.verify, gpu_lm)
    print(f"{args.model} on {torch.cuda.get_device_name()}: load {load_s:.1f} s, verify {verify_s:.2f} s, "
          f"ok={report['ok']}, max |hook - hidden| below the last block "
          f"{max(r['max_abs_diff'] for r in report['layers'][:-1]):.3g}")
    with tempfile.TemporaryDirectory() as tmp:
        gpu = run(gpu_lm, docs, args.max_tokens, f"{tmp}/gpu")
        del gpu_lm
        cpu = run(lamina.load(args.model, device="cpu"), docs, args.max_tokens, f"{tmp}/cpu")
        store_diff = max(float((gpu["store"].read(s) - cpu["store"].read(s)).abs().max()
                               / cpu["store"].read(s).abs().max().clamp_min(1e-30)) for s in SITES)
    a, b = gpu["profile"].table[COLUMNS].to_numpy(float), cpu["profile"].table[COLUMNS].to_numpy(float)
    profile_diff = float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))
    results = {"model": args.model, "device": torch.cuda.get_device_name(), "verify_ok": report["ok"],
               "n_tokens": gpu["n_tokens"], "profile_relative_diff": profile_diff,
               "extract_relative_diff": store_diff,
               **{f"{where}_{job}_s": run_[f"{job}_s"] for where, run_ in (("gpu", gpu), ("cpu", cpu))
                  for job in ("profile", "extract")}}
    for where, r in (("gpu", gpu), ("cpu", cpu)):
        print(f"  {where}: profile {r['profile_s']:.2f} s ({r['n_tokens'] / r['profile_s']:.0f} tokens/s), "
              f"extract {r['extract_s']:.2f} s")
    print(f"  gpu vs cpu: profile statistics differ by {profile_diff:.2g} (relative), stored activations "
          f"by {store_diff:.2g} of their scale")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    ok = report["ok"] and profile_diff <= 1e-3 and store_diff <= 1e-3
    print("ok" if ok else "FAILED: the GPU run disagrees with the CPU run")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
