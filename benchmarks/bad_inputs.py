"""The command-line cases of tests/test_bad_inputs.py run against any checkout, each classified:
good (exit 2, one line on stderr, nothing written), poor (refused, but several lines or files written), bad
(a traceback, exit 0 on a meaningless value, or the computation ran: more than 60 s).

    WT=$PWD PYTHONPATH=/path/to/checkout python benchmarks/bad_inputs.py > verdicts.jsonl

Cases that load a model get `--model random:llama` (and `--max-tokens 64` for profile/extract), so an
accepted bad value costs seconds, not minutes. Used for the before/after counts in docs/RELIABILITY.md.
"""
import ast
import json
import os
import signal
import tempfile
from pathlib import Path

from typer.testing import CliRunner

from lamina.cli import app

src = Path(os.environ["WT"], "tests/test_bad_inputs.py").read_text()
lists = {}
for node in ast.parse(src).body:
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in (
            "BAD_NUMBERS", "OUT_COMMANDS", "BAD_MODELS", "BAD_JSONL"):
        lists[node.targets[0].id] = ast.literal_eval(node.value)

cases = []
for args, _ in lists["BAD_NUMBERS"]:
    extra = ["--model", "random:llama"] + (["--max-tokens", "64"] if args[0] in ("profile", "extract") and "--max-tokens" not in args else [])
    cases.append(("number", args + extra, None))
for args in lists["OUT_COMMANDS"]:
    cases.append(("out-file", args + ["--out", "taken"], "taken"))
for args in lists["OUT_COMMANDS"][:3]:
    cases.append(("out-proc", args + ["--out", "/proc/lamina-x"], None))
for line, _ in lists["BAD_JSONL"]:
    cases.append(("jsonl", ["profile", "--model", "random:llama", "--corpus", "c.jsonl", "--out", "o", "--max-tokens", "64"], line))
for spec, _ in lists["BAD_MODELS"]:
    cases.append(("model", ["verify", "--model", spec], None))

class Timeout(Exception):
    pass

def alarm(*_):
    raise Timeout()

signal.signal(signal.SIGALRM, alarm)
runner = CliRunner()
out = []
for kind, args, extra in cases:
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        if kind == "out-file":
            Path("taken").write_text("x")
        if kind == "jsonl":
            Path("c.jsonl").write_text('{"text": "fine"}\n' + extra + "\n")
        before = set(os.listdir("."))
        signal.alarm(60)
        try:
            r = runner.invoke(app, args)
            code, err, exc = r.exit_code, r.stderr.strip(), r.exception
        except Timeout:
            code, err, exc = None, "ran past 60 s (computing)", None
        signal.alarm(0)
        written = sorted(set(os.listdir(".")) - before)
        os.chdir("/")
    tb = exc is not None and not isinstance(exc, SystemExit)
    if code is None or tb or code == 0:
        verdict = "bad"
    elif code == 2 and len(err.splitlines()) == 1 and not written:
        verdict = "good"
    else:
        verdict = "poor"
    last = (repr(exc)[:120] if tb else (err.splitlines()[-1][:160] if err else ""))
    out.append({"kind": kind, "args": " ".join(args), "extra": extra, "exit": code, "verdict": verdict,
                "lines": len(err.splitlines()), "written": written, "message": last})
    print(json.dumps(out[-1]), flush=True)
