"""The benchmark's child jobs, one per process so that each peak RSS is its own.

Each job prints one JSON line as its last line of output:
    mem      one capture variant, run twice on one batch           -> peak RSS
    profile  the end-to-end profile job (lamina or a peer loop)     -> tokens/s, peak RSS, statistics
    extract  `lamina extract` of one site over a corpus slice      -> tokens/s, peak RSS
"""
from __future__ import annotations

import copy
import json
import os
import resource
import shutil
import tempfile
import time

import peers
import torch

THREADS = int(os.environ.get("LAMINA_BENCH_THREADS", "2"))


def peak_rss_mb() -> float:
    """This process's peak resident memory, MiB.

    Not ru_maxrss: Linux carries the parent's high-water mark into a forked-and-exec'd child's ru_maxrss
    (a child of a 2 GB benchmark process reports at least 2 GB), so VmHWM of the child's own address space
    is read instead, with ru_maxrss only where /proc is missing.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def model_mb(lm) -> float:
    return sum(p.numel() * p.element_size() for p in lm.model.parameters()) / 2**20


def load(spec: str):
    import lamina

    return lamina.load(spec, check=False)  # load times are measured on their own, with the anatomy check


def corpus(tokens: int | None):
    """The built-in corpus, repeated (documents renamed) until it holds at least `tokens` tokens (~74k each)."""
    from lamina.data.corpus import Document, builtin_corpus

    docs = builtin_corpus()
    copies = 1 if not tokens else -(-tokens // 70_000)
    return [Document(f"{d.id}#{i}" if i else d.id, d.text) for i in range(copies) for d in docs]


def text_batch(lm, batch: int, tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [batch, tokens] batch of real text from the built-in corpus, no padding."""
    from lamina.data.windows import make_windows, tokenize_documents

    ids = [i for doc in tokenize_documents(lm.tokenizer, corpus(None)) for i in doc]
    windows = make_windows([ids], tokens)[:batch]
    input_ids = torch.tensor([w.ids for w in windows])
    return input_ids, torch.ones_like(input_ids)


def mem_job(spec: str, variant: str, batch: int, tokens: int) -> dict:
    torch.set_num_threads(THREADS)
    lm = load(spec)
    peers.COPY_MODEL = False  # alone in its process, a peer may wrap the model itself: no second copy
    tool = variant.split(" ", 1)[0]
    variants, missing = peers.build(lm, [tool], peers.site_sets(lm.n_layers))
    if tool in missing:
        return {"error": missing[tool]}
    run = next(v for v in variants if v.name == variant).run
    ids, mask = text_batch(lm, batch, tokens)
    with torch.inference_mode():
        for _ in range(2):
            run(ids, mask)
    return {"rss_mb": peak_rss_mb(), "model_mb": model_mb(lm)}


def profile_job(spec: str, method: str, max_tokens: int, batch_size: int = 8, context: int = 128) -> dict:
    """Profile every resid_post over the first `max_tokens` tokens of the (repeated) built-in corpus."""
    from lamina.analyses.profile.laminar import profile
    from lamina.data.windows import batches, corpus_windows

    torch.set_num_threads(THREADS)
    lm = load(spec)
    peers.COPY_MODEL = False
    docs = corpus(max_tokens)
    run = None if method == "lamina" else peers.profile_runner(lm, method)  # peers are built before the clock
    ids, mask = text_batch(lm, 2, 32)
    with torch.inference_mode():  # warm-up: each method's first call (lazy initialization) stays off the clock
        if method == "lamina":
            lm.capture({"input_ids": ids, "attention_mask": mask}, ["resid_post"])
        else:
            run(ids, mask)
    start, cpu_start = time.perf_counter(), time.process_time()
    if method == "lamina":
        result = profile(lm, docs, kind="resid_post", context=context, batch_size=batch_size, max_tokens=max_tokens,
                         progress=False)
        seconds = time.perf_counter() - start
        tokens = int(result.table["n_tokens"].iloc[0])
        cols = ["mean_token_norm", "std", "kurtosis", "top1_abs", "top2_abs", "top3_abs", "median_abs"]
        runner_stats = result.table[cols].to_dict(orient="records")
    else:
        windows = corpus_windows(lm, docs, context, None, False, max_tokens)
        tokens, runner_stats = peers.profile_loop(lm, batches(windows, batch_size, lm.tokenizer.pad_token_id), run)
        seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start  # all threads: steadier than wall time on a shared machine
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "cpu_s": cpu,
            "rss_mb": peak_rss_mb(), "model_mb": model_mb(lm), "stats": runner_stats}


def profile_paired_job(spec: str, max_tokens: int, rounds: int, batch_size: int = 8, context: int = 128) -> dict:
    """Every profile method in ONE process, round-robin over `rounds` with a rotating start, the same corpus
    slice each time: each method's time divided by the bare forward's in the same round (paired)."""
    import statistics

    from lamina.analyses.profile.laminar import profile
    from lamina.data.windows import batches, corpus_windows

    torch.set_num_threads(THREADS)
    lm = load(spec)
    docs = corpus(max_tokens)
    hooked = copy.copy(lm)  # the hand-written hooks stay on a copy of the model: they would slow the others
    hooked.model = copy.deepcopy(lm.model)
    runners = {m: peers.profile_runner(hooked if m == "hf-hooks" else lm, m) for m in ("bare", "hf-hooks", "tl", "nnsight")}
    windows = corpus_windows(lm, docs, context, None, False, max_tokens)

    def run(method):
        if method == "lamina":
            return profile(lm, docs, kind="resid_post", context=context, batch_size=batch_size,
                           max_tokens=max_tokens, progress=False)
        return peers.profile_loop(lm, batches(windows, batch_size, lm.tokenizer.pad_token_id), runners[method])

    methods = ["bare", "lamina", "hf-hooks", "tl", "nnsight"]
    ids, mask = text_batch(lm, 2, 32)
    with torch.inference_mode():  # warm-up on a small batch: lazy initialization stays off the clock
        lm.capture({"input_ids": ids, "attention_mask": mask}, ["resid_post"])
        for runner in runners.values():
            runner(ids, mask)
    times = {m: [] for m in methods}
    for r in range(rounds):
        k = r % len(methods)
        for method in methods[k:] + methods[:k]:
            start = time.perf_counter()
            run(method)
            times[method].append(time.perf_counter() - start)
    tokens = sum(len(w.ids) - w.first_counted for w in windows)
    return {"tokens": tokens, "rounds": rounds, "methods": {
        m: {"seconds": ts, "tokens_per_s": tokens / statistics.median(ts),
            "ratio": statistics.median(b / t for b, t in zip(times["bare"], ts))} for m, ts in times.items()}}


def extract_job(spec: str, max_tokens: int, site: str = "resid_post.6") -> dict:
    from lamina.extract import extract

    torch.set_num_threads(THREADS)
    lm = load(spec)
    folder = tempfile.mkdtemp(prefix="lamina-bench-extract-")
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        store = extract(lm, corpus(max_tokens), [site], folder, max_tokens=max_tokens, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        tokens = store.n_rows
        shard_tokens = store.manifest["settings"]["windows_per_shard"] * store.manifest["settings"]["context"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "rss_mb": peak_rss_mb(),
            "model_mb": model_mb(lm), "site": site, "shard_tokens": shard_tokens, "cpu_s": cpu}


LOAD_CODE = """
import json, time
t0 = time.perf_counter()
import lamina
t1 = time.perf_counter()
lm = lamina.load()
t2 = time.perf_counter()
lm.check_anatomy()  # again, alone: what the anatomy check on load costs
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "check_s": t3 - t2, "source": lm.info.get("source")}))
"""


def main(argv: list[str]) -> None:
    job, args = argv[0], argv[1:]
    if job == "mem":
        spec, variant, shape = args
        b, t = map(int, shape.split("x"))
        out = mem_job(spec, variant, b, t)
    elif job == "profile":
        out = profile_job(args[0], args[1], int(args[2]))
    elif job == "profile-paired":
        out = profile_paired_job(args[0], int(args[1]), int(args[2]))
    elif job == "extract":
        out = extract_job(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown job {job}")
    print(json.dumps(out))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
