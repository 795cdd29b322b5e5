"""One HTML page per neuron: its dataset examples coloured by activation, and gradient ascent beside them.

Colour levels run 0-10: round(10 * activation / the neuron's max over the corpus), negatives at 0.
Files in an output folder: top_examples.json (lamina top-examples), maximize_<SITE>_<INDEX>.json
(lamina maximize) and neuron_<SITE>_<INDEX>.html (written by whichever of the two runs second, too).
"""
from __future__ import annotations

import json
from pathlib import Path


def slug(neuron: str) -> str:
    """File-name form of a neuron: mlp_post.15:123 -> mlp_post.15_123."""
    return neuron.replace(":", "_")


def level(value: float, top: float) -> int:
    """0-10 colour level of an activation, normalised by the neuron's max."""
    if not top or top <= 0 or value != value:
        return 0
    return max(0, min(10, round(10 * value / top)))


def _maximize_rows(neuron: dict, mx: dict) -> dict:
    """One maximize result's tables as rows of values (the template formats and escapes them)."""
    best = neuron["top"][0] if neuron.get("top") else None
    data_max = best["value"] if best else None
    ratio = lambda a: a / data_max if data_max else float("nan")  # noqa: E731
    runs = [[r["seed"], repr(r["text"]), r["optimized_activation"], r["rescored_activation"], r["rescored_prompt_ce"],
             ratio(r["rescored_activation"]), f'{r["decoded_is_init"]:.0%}' if "decoded_is_init" in r else ""]
            for r in mx["runs"]]
    rep = mx.get("reproducibility") or {}
    rep_rows = ([[rep["n_seeds"], rep["unique_tokens"], rep["mean_jaccard"], rep["mean_cosine"],
                  rep.get("initial_mean_cosine"), rep["activation_mean"], rep["activation_std"],
                  rep["activation_min"], rep["activation_max"]]] if rep.get("n_seeds", 0) > 1 else [])
    fluency = [[f["lambda"], repr(f["text"]), f["activation"], f["prompt_ce"], "yes" if f["frontier"] else "",
                ratio(f["activation"])] for f in mx.get("fluency") or []]
    return {**mx, "run_rows": runs, "rep_rows": rep_rows, "fluency_rows": fluency}


def render_neuron_page(model: str, neuron: dict, maximize: list[dict] = ()) -> str:
    """The page for one neuron of a top_examples.json, with the maximize results for the same neuron
    (the template `report/templates/neuron.html`, autoescaped)."""
    from lamina.report.templating import environment

    env = environment("lamina.report")
    env.filters.update(level=level, cell=lambda x: f"{x:.4g}" if isinstance(x, float) else str(x),
                       pct=lambda x: f"{x:.0%}")
    top = neuron["max"] or 0.0
    return env.get_template("neuron.html").render(
        title=f"{model} {neuron['neuron']}", neuron=neuron, top=top,
        best=neuron["top"][0] if neuron.get("top") else None,
        maximize=[_maximize_rows(neuron, mx) for mx in maximize],
        tally=[[repr(t["token"]), t["batches"]] for t in neuron["argmax_tally"][:30]])


def load_maximize(paths) -> dict[tuple[str, str], list[dict]]:
    """(model, target) -> maximize results, from maximize_*.json files or folders holding them."""
    found: dict[tuple[str, str], list[dict]] = {}
    for path in map(Path, paths):
        files = sorted(path.glob("maximize_*.json")) if path.is_dir() else [path]
        for f in files:
            if f.is_file():
                data = json.loads(f.read_text())
                found.setdefault((data["model"], data["target"]), []).append(data)
    return found


def write_neuron_pages(out: Path, compare=()) -> list[Path]:
    """Write neuron_<slug>.html for every neuron of out/top_examples.json, with maximize results where found."""
    out = Path(out)
    source = out / "top_examples.json"
    if not source.is_file():
        return []
    top = json.loads(source.read_text())
    maxed = load_maximize([out, *compare])
    written = []
    for name, neuron in top["neurons"].items():
        path = out / f"neuron_{slug(name)}.html"
        found = maxed.get((top["model"], name), [])
        path.write_text(render_neuron_page(top["model"], neuron, found), encoding="utf-8")
        written.append(path)
    return written
