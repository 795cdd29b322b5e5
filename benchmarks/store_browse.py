"""Store-first analyses, the neuron index and the browser: throughput, time, memory.

    python benchmarks/store_browse.py read  --store S          store read MB/s: one site, all neurons / 8 neurons
    python benchmarks/store_browse.py index --rows 250000      index build time and peak RSS of a synthetic
                                                               one-site store (a child process per size)
    python benchmarks/store_browse.py page  --store S          every dynamic page's server time (p50, p99)
    python benchmarks/store_browse.py browse --rows 65536      the same on a synthetic store of that size
                                                               (built and indexed first, kept under --work)
    python benchmarks/store_browse.py top   --model M --site mlp_post.5 --max-tokens N
                                                               top-examples --store vs running the model, paired

A synthetic store holds Gaussian float16 values (heavy-tailed columns mixed in) with real shard files and
manifest, so the index reads it exactly as an extracted one; its values do not matter for time and memory.
Every timing here was taken on a shared 2-core machine: read ratios measured in one process, not absolutes.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lamina.store import ActivationStore
from lamina.store.columns import chunks


def synthetic_store(folder: Path, rows: int, width: int, site: str = "mlp_post.5", shard_rows: int = 32768,
                    doc_tokens: int = 2000) -> ActivationStore:
    """A store of `rows` tokens x `width` float16 values in real shards (documents of `doc_tokens` tokens)."""
    from lamina.store.manifest import write_manifest
    from lamina.store.shards import write_shard

    if (folder / "manifest.json").exists():
        return ActivationStore(folder)
    n_shards = -(-rows // shard_rows)
    settings = {"model": "random:gpt2", "sites": [site], "context": 128, "stride": 128, "skip_first": False,
                "pack": False, "storage_dtype": "float16", "rows": rows, "width": width}
    write_manifest(folder, settings, {"n_shards": n_shards, "n_windows": -(-rows // 128),
                                      "doc_ids": [f"d{i}" for i in range(-(-rows // doc_tokens))]})
    g = torch.Generator().manual_seed(0)
    scale = torch.ones(width)
    scale[::50] = 20.0                                                   # a few heavy columns
    for i in range(n_shards):
        lo, hi = i * shard_rows, min(rows, (i + 1) * shard_rows)
        r = torch.arange(lo, hi)
        x = (torch.randn(hi - lo, width, generator=g) * scale).half()
        row_id = ((r // doc_tokens) << 24) | (r % doc_tokens)
        write_shard(folder, i, {site: x, "token_id": torch.randint(0, 50000, (hi - lo,), generator=g),
                                "row_id": row_id}, {"windows": [lo // 128, hi // 128], "n_rows": hi - lo})
    return ActivationStore(folder)


def read_throughput(store: ActivationStore, site: str, repeats: int = 3) -> dict:
    """MB/s of `chunks` over one site: all neurons, and 8 neurons (strided columns), best of `repeats`."""
    out = {}
    width = None
    for label, neurons in (("all neurons", None), ("8 neurons", list(range(0, 8 * 97, 97)))):
        best = float("inf")
        for _ in range(repeats):
            t0, nbytes = time.perf_counter(), 0
            for _, part in chunks(store, [site], neurons):
                x = part[site].clone()                                    # touch every byte (mmap is lazy)
                nbytes += x.numel() * x.element_size()
                width = width or x.shape[1]
            best = min(best, time.perf_counter() - t0)
        out[label] = {"seconds": best, "MB": nbytes / 1e6, "MB_per_s": nbytes / 1e6 / best,
                      "rows_per_s": store.n_rows / best}
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: reset by exec, unlike getrusage's ru_maxrss, which keeps the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def index_run(rows: int, width: int, folder: Path) -> dict:
    """Child process: build (or reuse) the synthetic store, index it, report time and peak RSS."""
    from lamina.index import write_index

    store = synthetic_store(folder / f"store-{rows}-{width}", rows, width)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    write_index(store, progress=False)
    seconds = time.perf_counter() - t0
    return {"rows": rows, "width": width, "index_seconds": seconds, "rows_per_s": rows / seconds,
            "peak_rss_MB": peak_rss_mb(), "rss_before_MB": rss0,
            "store_GB": sum(p.stat().st_size for p in store.folder.glob("shard-*.safetensors")) / 1e9}


def page_times(store_folder: Path, n: int = 60) -> dict:
    """Server time of every dynamic page (in process, through the app's middleware and templates): the overview,
    a site table (first page, a later page sorted by another column, a filter), neuron pages and their JSON over
    random neurons, a token search."""
    from starlette.testclient import TestClient

    from lamina.browse.app import create_app

    client = TestClient(create_app(store_folder), base_url="http://127.0.0.1")
    data = client.app.state.data
    index = data.index
    site = index.sites[0]
    width = index.width(site)
    client.get(f"/neuron/{site}/0")                                      # warm-up: tokenizer, imports, checksums
    client.get(f"/site/{site}")
    client.get("/search", params={"q": "the"})
    neurons = np.random.default_rng(0).integers(0, width, n).tolist()
    routes = {"overview": lambda i: "/", "site table": lambda i: f"/site/{site}",
              "site table, page 6 by std": lambda i: f"/site/{site}?sort=std&desc=0&offset=500",
              "site table, filtered": lambda i: f"/site/{site}?min.max=1&max.frac_pos=0.6",
              "neuron": lambda i: f"/neuron/{site}/{i}", "api/neuron": lambda i: f"/api/neuron/{site}/{i}",
              "search": lambda i: "/search?q=the"}
    out = {"rows": data.store.n_rows, "neurons": width}
    for name, url in routes.items():
        times = []
        for i in neurons:
            t0 = time.perf_counter()
            assert client.get(url(i)).status_code == 200, url(i)
            times.append(time.perf_counter() - t0)
        out[name] = {"p50_ms": round(1000 * statistics.median(times), 2),
                     "p99_ms": round(1000 * float(np.percentile(times, 99)), 2), "n": n}
    return out


def top_paired(model: str, site: str, max_tokens: int, folder: Path, rounds: int = 2) -> dict:
    """top-examples over the same corpus: from a store (extracted once) vs running the model, interleaved."""
    import lamina
    from lamina.analyses.neurons.top_examples import top_examples, top_examples_from
    from lamina.analyses.sources import StoreSource
    from lamina.data.corpus import load_corpus
    from lamina.extract import extract

    lm = lamina.load(model)
    docs = load_corpus()
    t0 = time.perf_counter()
    store = extract(lm, docs, [site], folder / f"top-{model.replace(':', '_')}-{site}-{max_tokens}", context=64,
                    max_tokens=max_tokens, dtype="float16", resume=True, progress=False)
    extract_s = time.perf_counter() - t0
    neurons = [f"{site}:{i}" for i in (0, 1, 2, 3)]
    source = StoreSource(store, lm.tokenizer)
    live, stored = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        top_examples(lm, neurons, docs, context=64, max_tokens=max_tokens, progress=False)
        live.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        top_examples_from(source, neurons, progress=False)
        stored.append(time.perf_counter() - t0)
    return {"model": model, "site": site, "tokens": store.n_rows, "extract_seconds_once": extract_s,
            "model_seconds": live, "store_seconds": stored,
            "speedup_median": statistics.median(live) / statistics.median(stored)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["read", "index", "index-child", "page", "browse", "top"])
    p.add_argument("--store", type=Path)
    p.add_argument("--rows", type=int, nargs="+", default=[250_000])
    p.add_argument("--width", type=int, default=1536)
    p.add_argument("--work", type=Path, default=Path("/tmp/lamina-bench"))
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--site", default="mlp_post.5")
    p.add_argument("--max-tokens", type=int, default=20000)
    a = p.parse_args()
    torch.set_num_threads(2)
    a.work.mkdir(parents=True, exist_ok=True)
    if a.what == "read":
        store = ActivationStore(a.store) if a.store else synthetic_store(a.work / f"store-{a.rows[0]}-{a.width}",
                                                                          a.rows[0], a.width)
        result = read_throughput(store, store.sites[0])
    elif a.what == "index":  # one child process per size: each peak RSS is its own
        result = []
        for rows in a.rows:
            synthetic_store(a.work / f"store-{rows}-{a.width}", rows, a.width)  # written here, indexed in a child
            out = subprocess.run([sys.executable, __file__, "index-child", "--rows", str(rows), "--width", str(a.width),
                                  "--work", str(a.work)], capture_output=True, text=True, check=True)
            result.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(result[-1]), flush=True)
    elif a.what == "index-child":
        result = index_run(a.rows[0], a.width, a.work)
    elif a.what == "page":
        result = page_times(a.store)
    elif a.what == "browse":
        from lamina.index import write_index

        store = synthetic_store(a.work / f"store-{a.rows[0]}-{a.width}", a.rows[0], a.width)
        if not (store.folder / "index" / "index.json").exists():
            write_index(store, progress=False)
        result = page_times(store.folder)
    else:
        result = top_paired(a.model, a.site, a.max_tokens, a.work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
