"""Warm load of the embedded model after `import lamina`, in fresh processes, with its parts.

    python benchmarks/quick_load.py [--runs 5] [--spec smollm2-135m]

Each run is a new Python process (imports are what a warm load mostly costs); the cache must be warm (run
`lamina verify` once first). Prints one JSON line per run and the medians, wall-clock and CPU seconds of this process (on a shared machine
the CPU seconds are the steadier figure; torch's own threads count in them). The goal in issue 13: load <= 2 s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CODE = """
import json, sys, time
marks = [(time.perf_counter(), time.process_time())]
import lamina
marks.append((time.perf_counter(), time.process_time()))
import torch
marks.append((time.perf_counter(), time.process_time()))
from transformers import AutoTokenizer, LlamaForCausalLM
marks.append((time.perf_counter(), time.process_time()))
lm = lamina.load(sys.argv[1])
marks.append((time.perf_counter(), time.process_time()))
wall = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:])]
print(json.dumps({"import_lamina_s": wall[0], "import_torch_s": wall[1], "import_transformers_s": wall[2],
                  "load_after_imports_s": wall[3], "load_s": sum(wall[1:]),
                  "load_cpu_s": sum(cpu[1:]), "import_transformers_cpu_s": cpu[2], "load_after_imports_cpu_s": cpu[3],
                  "source": lm.info["source"], "modules": len(sys.modules)}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--spec", default="smollm2-135m")
    args = p.parse_args()
    rows = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", CODE, args.spec], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    keys = [k for k in rows[0] if k.endswith("_s")]
    print("median:", json.dumps({k: round(statistics.median(r[k] for r in rows), 3) for k in keys}))


if __name__ == "__main__":
    main()
