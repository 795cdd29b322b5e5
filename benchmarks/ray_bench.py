"""`lamina extract` in one process against a Ray actor pool of 1 and 2 actors, on this machine.

    python benchmarks/ray_bench.py --model smollm2-135m --tokens 8192 --rounds 2

One local Ray cluster (127.0.0.1, --cpus CPUs, no dashboard) is started once; every run is a fresh
process (so its peak RSS is its own) that loads the model, then times `extract` alone: the single process
with torch's default threads (2 here) or with 1, or a driver that sends the shards to the pool (each actor:
1 CPU, so Ray sets 1 thread). Runs are interleaved (single, ray-1, ray-2, single, ...) so a busy machine slows each alike.
Ray's time includes starting the actors and loading one model replica in each: the overhead a short job
pays. `steady tokens/s` is counted from the first shard written to the last (sidecar times), after the
start-up. Each run's shard checksums are compared with the first single-process run's: the same bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_MODES = ("single", "single-1t", "ray-1", "ray-2")  # single-1t: one torch thread, as each actor has


def child(args) -> None:
    """One timed run in this process: prints a JSON line."""
    import lamina
    from lamina.data.corpus import load_corpus
    from lamina.extract import extract

    if args.mode == "single-1t":
        import torch

        torch.set_num_threads(1)
    lm = lamina.load(args.model)
    docs = load_corpus()
    executor = None
    if args.mode.startswith("ray"):
        from lamina.ray_jobs import RayExecutor, RaySettings

        executor = RayExecutor(RaySettings(address=args.address, actors=int(args.mode.split("-")[1])))
    start = time.perf_counter()
    store = extract(lm, docs, args.sites.split(","), args.out, context=128, batch_size=8, max_tokens=args.tokens,
                    windows_per_shard=args.windows_per_shard, progress=False, executor=executor)
    seconds = time.perf_counter() - start
    times = sorted(p.stat().st_mtime for p in Path(args.out).glob("shard-*.json"))
    first_rows = min(store.shards.items())[1]["n_rows"] if store.shards else 0
    steady = (store.n_rows - first_rows) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    print(json.dumps({"mode": args.mode, "seconds": seconds, "tokens": store.n_rows, "steady_tokens_s": steady,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "key": store.manifest["key"], "sha": [store.shards[i]["sha256"] for i in sorted(store.shards)]}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--sites", default="resid_post.3,mlp_post.6,resid_post.9")
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--windows-per-shard", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--mode", choices=CHILD_MODES)  # internal: one run
    p.add_argument("--address")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.mode:
        return child(args)

    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, object_store_memory=300 * 2**20,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for mode in CHILD_MODES:
                    out = Path(tmp) / f"{mode}-{r}"
                    cmd = [sys.executable, __file__, "--mode", mode, "--address", address, "--out", str(out),
                           "--model", args.model, "--sites", args.sites, "--tokens", str(args.tokens),
                           "--windows-per-shard", str(args.windows_per_shard)]
                    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                    results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    print(json.dumps({k: v for k, v in results[-1].items() if k != "sha"}), flush=True)
    finally:
        ray.shutdown()
    same = {m: all(r["sha"] == results[0]["sha"] and r["key"] == results[0]["key"] for r in results if r["mode"] == m)
            for m in CHILD_MODES}
    print(f"\n{args.model}, {results[0]['tokens']} tokens, sites {args.sites}, {args.rounds} interleaved rounds, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("| executor | best s | tokens/s | x single | steady tokens/s | driver peak RSS MB | store equal |")
    print("|---|---:|---:|---:|---:|---:|---|")
    best_single = min(r["seconds"] for r in results if r["mode"] == "single")
    for mode in CHILD_MODES:
        runs = [r for r in results if r["mode"] == mode]
        best = min(runs, key=lambda r: r["seconds"])
        print(f"| {mode} | {best['seconds']:.1f} | {best['tokens'] / best['seconds']:.0f} | "
              f"{best_single / best['seconds']:.2f} | {max(r['steady_tokens_s'] for r in runs):.0f} | "
              f"{max(r['peak_rss_mb'] for r in runs):.0f} | {same[mode]} |")


if __name__ == "__main__":
    main()
