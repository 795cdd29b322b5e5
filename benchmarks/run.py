"""lamina's benchmark: capture overhead against the bare forward and against peer tools, memory, profile, load.

    .venv/bin/python benchmarks/run.py [--models random:gpt2,smollm2-135m] [--shapes 8x128,32x512:3] [--repeats 12]
                                       [--quick] [--full] [--merge earlier.json] [--out docs/BENCHMARKS.md]

1. Timing, in one process per model: every variant (bare forward, lamina captures, TransformerLens, nnsight)
   runs once per repeat, round-robin with a rotating start, so that drift on a busy machine hits all of them
   alike; a variant's cost is the median over repeats of (its time / the bare forward's time in that repeat).
   Before timing, every variant's values are checked against lamina's.
2. Peak memory: one child process per variant (jobs.py), ru_maxrss at its end.
3. The end-to-end profile job (lamina profile vs hand-written loops with HF hooks, TransformerLens, nnsight).
4. Load time of the embedded model, cold (fresh LAMINA_CACHE) and warm.
5. Peak RSS of profile and extract over growing corpus slices: it should not grow with the corpus.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import jobs  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402

BARE = "hf bare (base model)"
REL_FLAG = 1e-3  # a peer whose values differ from lamina's by more than this (relative to max |x|) is flagged


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="random:gpt2,smollm2-135m")
    p.add_argument("--shapes", default="8x128,32x512:3",
                   help="batch x tokens[:repeats], comma-separated; a shape's own repeats override --repeats, "
                        "and 0 repeats only warms up (32x512 takes 25-35 s a forward pass on 2 CPU threads)")
    p.add_argument("--repeats", type=int, default=12)
    p.add_argument("--tools", default=",".join(peers.TOOLS))
    p.add_argument("--threads", type=int, default=2, help="torch threads, here and in every child process")
    p.add_argument("--mem-shape", default="8x128", help="batch shape of the peak-memory children")
    p.add_argument("--profile-tokens", type=int, default=32_000, help="corpus tokens of the end-to-end profile job")
    p.add_argument("--profile-rounds", type=int, default=2, help="runs of each profile job (the fastest is reported)")
    p.add_argument("--paired-tokens", type=int, default=8_000, help="corpus tokens of the paired profile comparison")
    p.add_argument("--paired-rounds", type=int, default=4, help="rounds of the paired profile comparison")
    p.add_argument("--rss-tokens", default="128000,256000", help="corpus slices of the memory-flatness check "
                   "(extract's memory grows up to one shard, about 116k tokens of resid_post.6 on smollm2-135m)")
    p.add_argument("--memory-model", default="smollm2-135m", help="model of the load and memory-flatness checks")
    p.add_argument("--quick", action="store_true", help="3 repeats, 8x128 only, 16k-token profile, 16k/64k RSS check")
    p.add_argument("--full", action="store_true", help="add a 1M-token extract to the RSS check")
    p.add_argument("--full-profile", action="store_true",
                   help="also a 1M-token profile (about 25 min for smollm2-135m on 2 CPU threads)")
    p.add_argument("--merge", action="append", default=[],
                   help="a --json file of an earlier run whose timing shapes join this run's tables (repeatable)")
    p.add_argument("--skip", default="", help="sections to skip: timing,memory,profile,paired,load,rss")
    p.add_argument("--note", default="", help="a line printed under the title (e.g. 'smoke run')")
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    p.add_argument("--json", default="", help="also write every measurement to this JSON file")
    p.add_argument("--from-json", default="", help="measure nothing: write the tables of an earlier --json file")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.shapes = min(args.repeats, 3), "8x128"
        args.profile_tokens, args.rss_tokens, args.profile_rounds = 16_000, "16000,64000", 1
    args.rss_extract_tokens = args.rss_tokens + (",1000000" if args.full or args.full_profile else "")
    if args.full_profile:
        args.rss_tokens += ",1000000"
    os.environ["LAMINA_BENCH_THREADS"] = str(args.threads)  # the child processes read it
    args.command = shlex.join(["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    return args


def shape(text: str) -> tuple[int, int]:
    b, t = text.split(":")[0].lower().split("x")
    return int(b), int(t)


def shape_repeats(text: str, default: int) -> int:
    return int(text.split(":")[1]) if ":" in text else default


# ---- 1. timing ------------------------------------------------------------------------------------------

def check(lm, variants, ids, mask) -> dict[str, dict]:
    """Each variant's largest difference from lamina's values: absolute and relative to max |x| of the site."""
    wanted = sorted({s for v in variants for s in v.sites})
    with torch.inference_mode():
        ref = lm.capture({"input_ids": ids, "attention_mask": mask}, wanted) if wanted else {}
        result = {}
        for v in variants:
            if not v.sites:
                continue
            out, worst_abs, worst_rel, problem = v.run(ids, mask), 0.0, 0.0, ""
            for s in v.sites:
                if s not in out or out[s].shape != ref[s].shape:
                    problem = f"{s}: shape {tuple(out[s].shape) if s in out else 'missing'} vs {tuple(ref[s].shape)}"
                    break
                diff = float((out[s].float() - ref[s].float()).abs().max())
                worst_abs = max(worst_abs, diff)
                worst_rel = max(worst_rel, diff / max(float(ref[s].abs().max()), 1e-30))
            result[v.name] = {"abs": worst_abs, "rel": worst_rel, "problem": problem,
                              "flag": bool(problem) or worst_rel > REL_FLAG}
    return result


def time_variants(variants, ids, mask, repeats: int, warm_up: bool = True) -> dict[str, list[float]]:
    """Seconds per call of each variant, `repeats` times, round-robin with a rotating start."""
    times = {v.name: [] for v in variants}
    with torch.inference_mode():
        for v in variants if warm_up else []:  # first-call lazy initialization (once per process is enough)
            v.run(ids, mask)
        for r in range(repeats):
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                start = time.perf_counter()
                v.run(ids, mask)
                times[v.name].append(time.perf_counter() - start)
    return times


def summarize(times: dict[str, list[float]], n_tokens: int) -> dict[str, dict]:
    bare = times[BARE]
    rows = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        ratios = [t / b for t, b in zip(ts, bare)]  # pair by pair: same repeat, same machine state
        rows[name] = {"median_ms": 1000 * med, "min_ms": 1000 * min(ts), "max_ms": 1000 * max(ts),
                      "tokens_per_s": n_tokens / med, "ratio": statistics.median(ratios), "times": ts}
    return rows


def timing_section(args, spec: str) -> dict:
    torch.set_num_threads(args.threads)
    lm = jobs.load(spec)
    sets = peers.site_sets(lm.n_layers)
    variants, missing = peers.build(lm, args.tools.split(","), sets)
    ids, mask = jobs.text_batch(lm, 2, 32)
    checks = check(lm, variants, ids, mask)
    out = {"n_layers": lm.n_layers, "model_mb": jobs.model_mb(lm), "missing": missing, "checks": checks,
           "variants": [v.name for v in variants], "shapes": {}}
    for i, text in enumerate(args.shapes.split(",")):
        (b, t), repeats, label = shape(text), shape_repeats(text, args.repeats), text.split(":")[0]
        ids, mask = jobs.text_batch(lm, b, t)
        print(f"[timing] {spec} {label}: {len(variants)} variants x {repeats} repeats", flush=True)
        # Warm-up runs on the first shape only: a 32 x 512 pass takes half a minute on 2 CPU threads.
        times = time_variants(variants, ids, mask, repeats, warm_up=i == 0)
        if repeats:  # a shape with 0 repeats only warms the variants up (e.g. 2x32:0 before 32x512:2)
            out["shapes"][label] = summarize(times, b * t)
            print(report.timing_table(out, label), flush=True)
    return out


# ---- 2-5. child processes --------------------------------------------------------------------------------

def child(args: list[str], env: dict | None = None, timeout: float = 3600) -> tuple[dict, float]:
    """Run a jobs.py job (or python code with ['-c', code]) in a fresh process: (its JSON line, wall seconds)."""
    cmd = [sys.executable, *(args if args[0] == "-c" else [str(HERE / "jobs.py"), *args])]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"error": f"exit {proc.returncode}: {tail}"}, wall
    return json.loads(lines[-1]), wall


def variant_names(tools: list[str]) -> list[str]:
    names = [BARE, "hf full (with logits)", "hf output_hidden_states"] if "hf" in tools else [BARE]
    return names + [f"{tool} {label}" for tool in tools if tool != "hf" for label in peers.site_sets(3)]


def memory_section(args, spec: str, variants: list[str]) -> dict:
    rows = {}
    for name in variants:
        print(f"[memory] {spec} {name}", flush=True)
        rows[name] = child(["mem", spec, name, args.mem_shape])[0]
    return rows


def profile_section(args, spec: str) -> dict:
    """Each method's job `--profile-rounds` times, one process each, the order rotating every round (jobs
    minutes apart see different machine states); a method's row is its fastest run, with every run listed."""
    methods = [m for m in ("bare", "lamina", "hf-hooks", "tl", "nnsight")
               if m not in ("tl", "nnsight") or m in args.tools.split(",")]
    runs = {m: [] for m in methods}
    for r in range(args.profile_rounds):
        k = r % len(methods)
        for method in methods[k:] + methods[:k]:
            print(f"[profile] {spec} {method} {args.profile_tokens} tokens (round {r + 1})", flush=True)
            runs[method].append(child(["profile", spec, method, str(args.profile_tokens)])[0])
    rows = {}
    for method, results in runs.items():
        good = [x for x in results if "error" not in x]
        rows[method] = dict(max(good, key=lambda x: x["tokens_per_s"]), runs_tokens_per_s=[
            x["tokens_per_s"] for x in good]) if good else results[0]
    return rows


def profile_paired_section(args, spec: str) -> dict:
    print(f"[profile-paired] {spec} {args.paired_tokens} tokens x {args.paired_rounds} rounds", flush=True)
    return child(["profile-paired", spec, str(args.paired_tokens), str(args.paired_rounds)], timeout=6 * 3600)[0]


def load_section() -> dict:
    with tempfile.TemporaryDirectory(prefix="lamina-bench-cache-") as cache:
        env = {"LAMINA_CACHE": cache}
        out = {}
        for label in ("cold", "warm", "warm (2nd)"):
            print(f"[load] {label}", flush=True)
            result, wall = child(["-c", jobs.LOAD_CODE], env)
            out[label] = {**result, "process_s": wall}
    return out


def rss_section(args) -> dict:
    out = {"profile": {}, "extract": {}}
    slices = sorted({(int(t), "profile") for t in args.rss_tokens.split(",")} |
                    {(int(t), "extract") for t in args.rss_extract_tokens.split(",")})
    for tokens, job in slices:
        print(f"[rss] {job} {tokens} tokens", flush=True)
        extra = ["lamina"] if job == "profile" else []
        out[job][tokens] = child([job, args.memory_model, *extra, str(tokens)], timeout=6 * 3600)[0]
    return out


# ---- main -----------------------------------------------------------------------------------------------

def environment() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) / 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0.0)
    versions = {}
    for name in ("torch", "transformers", "transformer_lens", "nnsight", "lamina"):
        try:
            from importlib.metadata import version
            versions[name] = version(name.replace("_", "-"))
        except Exception:  # noqa: BLE001
            versions[name] = "not installed"
    return {"cores": os.cpu_count(), "threads": int(os.environ.get("LAMINA_BENCH_THREADS", "2")), "cpu": cpu,
            "ram_gib": mem, "python": platform.python_version(), "versions": versions, "load_average": os.getloadavg()}


def merge(results: dict, paths: list[str]) -> None:
    """Fill in what this run skipped from earlier runs' --json files (e.g. the slow 32x512 timing, made
    alone): whole sections this run lacks, and timing shapes it did not measure."""
    for path in paths:
        earlier = json.loads(Path(path).read_text())
        taken = []
        for spec, model in earlier["models"].items():
            current = results["models"].setdefault(spec, {})
            for section, value in model.items():
                if section not in current:
                    current[section] = value
                    taken.append(f"{spec} {section}")
                elif section == "timing":
                    for label, rows in value["shapes"].items():
                        if label not in current["timing"]["shapes"]:
                            current["timing"]["shapes"][label] = rows
                            taken.append(f"{spec} timing {label}")
        for section in ("load", "rss"):
            if section in earlier and section not in results:
                results[section] = earlier[section]
                taken.append(section)
        if taken:
            results.setdefault("merged", []).append(f"{', '.join(taken)} from `{earlier['command']}`")
            results["merged"] += earlier.get("merged", [])  # what that run had itself taken from others


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        merge(results, args.merge)
        Path(args.out).write_text(report.markdown(results, args))
        return
    skip = set(filter(None, args.skip.split(",")))
    results = {"env": environment(), "command": args.command, "note": args.note, "models": {},
               "settings": {k: getattr(args, k) for k in ("mem_shape", "profile_tokens", "memory_model")}}
    for spec in args.models.split(","):
        model = results["models"][spec] = {}
        if "timing" not in skip:
            model["timing"] = timing_section(args, spec)
        if "memory" not in skip:
            model["memory"] = memory_section(args, spec, variant_names(args.tools.split(",")))
        if "profile" not in skip:
            model["profile"] = profile_section(args, spec)
        if "paired" not in skip:
            model["profile_paired"] = profile_paired_section(args, spec)
    if "load" not in skip:
        results["load"] = load_section()
    if "rss" not in skip:
        results["rss"] = rss_section(args)
    results["env"]["load_average_end"] = os.getloadavg()
    merge(results, args.merge)
    text = report.markdown(results, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
