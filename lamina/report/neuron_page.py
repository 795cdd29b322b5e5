"""One HTML page per neuron: its dataset examples coloured by activation, and gradient ascent beside them.

Colour levels run 0-10: round(10 * activation / the neuron's max over the corpus), negatives at 0.
Files in an output folder: top_examples.json (lamina top-examples), maximize_<SITE>_<INDEX>.json
(lamina maximize) and neuron_<SITE>_<INDEX>.html (written by whichever of the two runs second, too).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from lamina.report.html import page

TOKEN_STYLE = ("<style>.ex{font-family:ui-monospace,monospace;font-size:13px;line-height:1.9;margin:.2em 0}"
               ".ex span{padding:1px 0;border-radius:2px}.ex .focus{outline:2px solid #236}"
               ".val{display:inline-block;width:6em;color:#555}</style>")


def slug(neuron: str) -> str:
    """File-name form of a neuron: mlp_post.15:123 -> mlp_post.15_123."""
    return neuron.replace(":", "_")


def level(value: float, top: float) -> int:
    """0-10 colour level of an activation, normalised by the neuron's max."""
    if not top or top <= 0 or value != value:
        return 0
    return max(0, min(10, round(10 * value / top)))


def tokens_html(tokens: list[str], values: list[float], top: float, focus: int | None = None) -> str:
    """Tokens as spans shaded by level; the hover title holds the exact activation."""
    spans = []
    for i, (tok, v) in enumerate(zip(tokens, values)):
        text = html.escape(tok).replace("\n", "↵").replace(" ", "&nbsp;") or "∅"
        cls = ' class="focus"' if i == focus else ""
        spans.append(f'<span{cls} style="background:rgba(255,110,0,{level(v, top) / 10:.1f})" '
                     f'title="{v:.4g} (level {level(v, top)})">{text}</span>')
    return "".join(spans)


def _examples(examples: list[dict], top: float) -> str:
    if not examples:
        return "<p>none</p>"
    rows = [f'<div class="ex"><span class="val">{e["value"]:.4g}</span>'
            f'{tokens_html(e["tokens"], e["activations"], top, e["focus"])} '
            f'<small>({html.escape(e["doc"])} @ {e["position"]})</small></div>' for e in examples]
    return "\n".join(rows)


def _table(header: list[str], rows: list[list]) -> str:
    cell = lambda x: f"{x:.4g}" if isinstance(x, float) else html.escape(str(x))  # noqa: E731
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _comparison(neuron: dict, mx: dict) -> str:
    """Gradient ascent (per seed, decoded and re-scored) against the best dataset example."""
    best = neuron["top"][0] if neuron.get("top") else None
    data_max = best["value"] if best else None
    ratio = lambda a: a / data_max if data_max else float("nan")  # noqa: E731
    s = mx["settings"]
    parts = [f'<p class="note">{len(mx["runs"])} seed(s), {s["n_tokens"]} soft tokens, {s["steps"]} Adam steps '
             f'(lr {s["lr"]}, norm penalty {s["norm_penalty"]}, {s["position"]} position'
             f'{", projected" if s.get("projected") else ""}). The optimised activation belongs to the soft '
             f'vectors; the re-scored one to the decoded tokens, a real prompt.'
             + (f' Best dataset activation: <b>{data_max:.4g}</b> at {html.escape(repr(best["token"]))} '
                f'({html.escape(best["doc"])}).' if best else "") + "</p>"]
    rows = [[r["seed"], repr(r["text"]), r["optimized_activation"], r["rescored_activation"], r["rescored_prompt_ce"],
             ratio(r["rescored_activation"]), f'{r["decoded_is_init"]:.0%}' if "decoded_is_init" in r else ""]
            for r in mx["runs"]]
    parts.append(_table(["seed", "decoded prompt", "optimised", "re-scored", "prompt CE (nats)",
                         "re-scored / dataset max", "decoded = initial token"], rows))
    rep = mx.get("reproducibility") or {}
    if rep.get("n_seeds", 0) > 1:
        parts.append(_table(["seeds", "unique decoded tokens", "mean pairwise Jaccard", "mean pairwise cosine",
                             "cosine of the initial random tokens (baseline)", "re-scored mean", "std", "min", "max"],
                            [[rep["n_seeds"], rep["unique_tokens"], rep["mean_jaccard"], rep["mean_cosine"],
                              rep.get("initial_mean_cosine"),
                              rep["activation_mean"], rep["activation_std"], rep["activation_min"],
                              rep["activation_max"]]]))
    if mx.get("fluency"):
        parts.append("<p>Discrete search, loss = -activation + lambda x the prompt's own cross-entropy:</p>")
        parts.append(_table(["lambda", "prompt", "activation", "prompt CE (nats)", "on frontier",
                             "activation / dataset max"],
                            [[p["lambda"], repr(p["text"]), p["activation"], p["prompt_ce"],
                              "yes" if p["frontier"] else "", ratio(p["activation"])] for p in mx["fluency"]]))
    return "\n".join(parts)


def render_neuron_page(model: str, neuron: dict, maximize: list[dict] = ()) -> str:
    """The page for one neuron of a top_examples.json, with the maximize results for the same neuron."""
    top = neuron["max"] or 0.0
    summary = (f'<p class="note">{neuron["n_tokens"]} tokens; mean {neuron["mean"]:.4g}, min {neuron["min"]:.4g}, '
               f'max {top:.4g}. Colour: 0-10 = activation / max; hover a token for its value.</p>'
               if neuron["n_tokens"] else "<p>no tokens</p>")
    sections = [("Summary", TOKEN_STYLE + summary)]
    for mx in maximize:
        kind = " (projected)" if mx["settings"].get("projected") else ""
        sections.append((f"Gradient ascent{kind} vs the best dataset example", _comparison(neuron, mx)))
    sections.append((f"Top {len(neuron['top'])} examples (one per document, by the document's max)",
                     _examples(neuron["top"], top)))
    tally = neuron["argmax_tally"][:30]
    sections.append((f"Argmax token per batch ({neuron['n_batches']} batches)",
                     _table(["token", "batches"], [[repr(t["token"]), t["batches"]] for t in tally])))
    quantiles = "".join(f"<h3>quantile {b['q_lo']:.0%}-{b['q_hi']:.0%}: activations {b['lo']:.3g} to {b['hi']:.3g}"
                        f"</h3>{_examples(b['examples'], top)}" for b in reversed(neuron["quantiles"]))
    sections.append(("Samples per quantile (from a uniform reservoir of tokens)", quantiles or "<p>none</p>"))
    sections.append(("Random tokens", _examples(neuron["random"], top)))
    return page(f"{model} {neuron['neuron']}", sections)


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
