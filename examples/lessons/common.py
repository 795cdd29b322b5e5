"""What every lesson shares: its command line, its output folder, its figures and its summary.json.

Each lesson is `examples/lessons/NN_title.py` with a `main(argv)`; the command line is the same for all:

    --model SPEC   the model (default: the embedded smollm2-135m; random:llama for mechanics)
    --quick        tiny settings (the smoke test runs every lesson this way on a random model)
    --out DIR      where figures and summary.json go (default lamina-out/lessons/NN-title)
    --layers L     the layers a whole-model lesson tunes (a list 0,10,20 or a range 0-29), instead of its default
    --permutations N  label permutations for the count's null, instead of the lesson's default
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np

import lamina
from lamina.report.figures import pyplot, save

DPI = 80


class Lesson:
    """One lesson run: parsed arguments, the model (loaded on first use), figures and the summary."""

    def __init__(self, doc: str, file: str, argv=None, extra=None):
        stem = Path(file).stem                                    # "08_category_image"
        self.number, self.slug = int(stem[:2]), stem[3:].replace("_", "-")
        self.question = _question(doc)
        parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--model", default=lamina.DEFAULT_MODEL, help="model spec (default %(default)s)")
        parser.add_argument("--quick", action="store_true", help="tiny settings, for tests")
        parser.add_argument("--out", default=None, help="output folder (default lamina-out/lessons/NN-title)")
        parser.add_argument("--layers", default=None, help="layers a whole-model lesson tunes (default: the lesson's)")
        parser.add_argument("--permutations", type=int, default=None, help="permutations of the count's null "
                            "(default: the lesson's)")
        for args, kw in (extra or []):
            parser.add_argument(*args, **kw)
        self.args = parser.parse_args(argv)
        self.quick = self.args.quick
        self.out = Path(self.args.out or f"lamina-out/lessons/{self.number:02d}-{self.slug}")
        self.out.mkdir(parents=True, exist_ok=True)
        self.figures: list[str] = []
        self.t0 = time.perf_counter()
        self._lm = None

    @property
    def lm(self):
        if self._lm is None:
            self._lm = lamina.load(self.args.model)
        return self._lm

    @property
    def embedded(self) -> bool:
        return self.args.model == lamina.DEFAULT_MODEL

    def pick(self, quick, full):
        return quick if self.quick else full

    def layers(self, every: int):
        """The layers a whole-model lesson tunes: --layers, else every `every`-th layer (all of them with --quick)."""
        if self.args.layers:
            return self.args.layers
        return self.pick(None, ",".join(str(k) for k in range(0, self.lm.n_layers, every)))

    def permutations(self, quick: int, full: int) -> int:
        """Permutations of the count's null: --permutations, else the lesson's quick / full default."""
        return self.args.permutations if self.args.permutations is not None else self.pick(quick, full)

    def middle_layer(self) -> int:
        return self.lm.n_layers // 2

    def default_neuron(self) -> str:
        """The neuron the maximization lessons study: mlp_post.15:933 on the embedded model."""
        return "mlp_post.15:933" if self.embedded else f"mlp_post.{self.middle_layer()}:0"

    def plt(self):
        return pyplot()

    def figure(self, fig, name: str, tight: bool = True) -> Path:
        path = save(fig, self.out / f"{name}.png", dpi=DPI, tight=tight)
        self.figures.append(path.name)
        return path

    def finish(self, summary: dict, look: str, differs: str | None = None) -> dict:
        """Write summary.json (the lesson's numbers, its figures, what to look at) and print where to look."""
        out = {"lesson": self.number, "title": self.slug, "question": self.question, "model": self.args.model,
               "quick": self.quick, "seconds": round(time.perf_counter() - self.t0, 1), "figures": self.figures,
               "look_at": look, **({"differs_from_course": differs} if differs else {}), **summary}
        (self.out / "summary.json").write_text(json.dumps(clean(out), indent=2) + "\n")
        print(f"\nLesson {self.number}: {self.question}\n  look at: {look}")
        if differs:
            print(f"  differs from the course: {differs}")
        print(f"  wrote {', '.join(self.figures)} and summary.json to {self.out}")
        return out


def _question(doc: str) -> str:
    m = re.search(r"Question:\s*(.+?)(?:\n\s*\n|$)", doc, re.S)
    return " ".join(m.group(1).split()) if m else doc.strip().splitlines()[0]


def clean(x):
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def laminar_plot(ax, result, label: str, column: str = "n_significant"):
    """Significant neurons per layer with the permutation null's 95% band."""
    lam = result.laminar
    ax.plot(lam["layer"], lam[column], "o-", label=label)
    if "null_high" in lam and lam["null_high"].notna().any():
        scale = lam["n_tested"] if column.startswith("fraction") else 1
        ax.fill_between(lam["layer"], lam["null_low"] / scale, lam["null_high"] / scale, alpha=0.2,
                        label=f"{label}: null 95%")
    ax.set_xlabel("layer")
    ax.set_ylabel("significant neurons")


def token_heatmap(ax, tokens: list[str], values, title: str = "", vmax=None):
    """One text as a row of tokens coloured by a neuron's activation (a 'text heatmap')."""
    values = np.asarray(values, float)
    vmax = vmax or (np.abs(values).max() or 1.0)
    cmap = pyplot().get_cmap("coolwarm")
    x, row = 0.0, 0
    for t, v in zip(tokens, values):
        t = t.replace("\n", "⏎")
        w = 0.012 * max(len(t), 1) + 0.006
        if x + w > 1.0:
            x, row = 0.0, row + 1
        ax.text(x, 1 - 0.22 * row, t, fontsize=8, va="top", family="monospace",
                bbox=dict(facecolor=cmap(0.5 + 0.5 * v / vmax), edgecolor="none", pad=1))
        x += w
    ax.set_axis_off()
    ax.set_title(title, fontsize=8, loc="left")
