"""Peak memory of the logit lens on one long text of the embedded model, by phase.

    python benchmarks/lens_memory.py --tokens 4359 [--chunk 512] [--file TEXT]
    MALLOC_MMAP_THRESHOLD_=65536 python benchmarks/lens_memory.py ...   # glibc without its dynamic threshold

Prints peak RSS (ru_maxrss, GB) after loading, after the lens, after the CSV and after each figure, and the
lens's wall time. The text is the first N tokens of FILE (default: the built-in corpus joined into one line),
so it is one text of N tokens, not N tokens of short texts. Issue 13: a text inside the model's context must
never need more than a few GB.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
import warnings
from pathlib import Path

import lamina
from lamina.analyses.vocab.logit_lens import logit_lens
from lamina.data.corpus import builtin_corpus
from lamina.report.logit_lens_plot import plot_lens_heatmap, plot_lens_layers


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=4359)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--file", type=Path)
    p.add_argument("--model", default="smollm2-135m")
    args = p.parse_args()
    lm = lamina.load(args.model)
    raw = args.file.read_text() if args.file else " ".join(d.text for d in builtin_corpus())
    with warnings.catch_warnings():  # the corpus is longer than the context on purpose: cut below
        warnings.simplefilter("ignore")
        ids = lm.tokenize([" ".join(raw.split())], truncate=True)["input_ids"][0][:args.tokens]
    text = lm.tokenizer.decode(ids.tolist())
    marks = {"load": peak_gb()}
    t = time.perf_counter()
    result = logit_lens(lm, [text], progress=False, chunk=args.chunk)
    seconds = time.perf_counter() - t
    marks["lens"] = peak_gb()
    with tempfile.TemporaryDirectory() as tmp:
        result.table.to_csv(Path(tmp) / "lens.csv", index=False)
        marks["csv"] = peak_gb()
        plot_lens_layers(result, Path(tmp) / "layers.png")
        plot_lens_heatmap(result, Path(tmp) / "heatmap.png")
        marks["figures"] = peak_gb()
    print(f"{result.info['n_tokens']} tokens, chunk {args.chunk}: lens {seconds:.0f} s; peak RSS GB "
          + ", ".join(f"after {k} {v:.2f}" for k, v in marks.items()))


if __name__ == "__main__":
    main()
