"""The browser's HTML: server-rendered pages, plots as Plotly specs drawn by the plotly.js that ships with the
`plotly` Python package (served locally: no network, no build step)."""
from __future__ import annotations

import html
import json
import math
from urllib.parse import quote, urlencode

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1250px;margin:1em auto;padding:0 1em;color:#222}
nav{border-bottom:2px solid #446;padding:.4em 0;margin-bottom:1em}nav a{margin-right:1.2em}
h2{color:#335;margin-top:1.6em}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#eef}th a{text-decoration:none}.num{text-align:right}.note{background:#f7f7fb;border-left:4px solid #88a;padding:.5em 1em}
.ex{font-family:ui-monospace,monospace;font-size:13px;line-height:1.9;margin:.15em 0;white-space:nowrap;overflow-x:auto}
.ex .tok{padding:1px 0;border-radius:2px}.ex .focus{outline:2px solid #236}.val{display:inline-block;width:6em;color:#555}
form.filters input{width:6em}
"""


def esc(x) -> str:
    return html.escape(str(x))


def fmt(x) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.4g}"
    return esc(x)


def page(title: str, body: str, plots: bool = False) -> str:
    script = '<script src="/static/plotly.min.js"></script>' if plots else ""
    nav = '<nav><a href="/">overview</a><a href="/search">token search</a></nav>'
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>{script}"
            f"<style>{STYLE}</style></head><body>{nav}<h1>{esc(title)}</h1>{body}</body></html>")


def plot(div: str, spec: dict) -> str:
    return (f'<div id="{div}" style="height:360px"></div><script>Plotly.newPlot("{div}", {json.dumps(spec)}.data, '
            f'{json.dumps(spec)}.layout, {{responsive: true}});</script>')


def colour(value, top: float) -> str:
    """Orange for positive activations, blue for negative, opacity = |value| / the neuron's max."""
    if value is None or not top or top <= 0:
        return "transparent"
    a = min(1.0, abs(value) / top)
    return f"rgba(255,110,0,{a:.3f})" if value >= 0 else f"rgba(40,90,255,{a:.3f})"


def heatmap(example: dict, top: float) -> str:
    """One example as token spans: background = activation, title = the exact value."""
    spans = []
    for i, (tok, v) in enumerate(zip(example["tokens"], example["activations"])):
        text = esc(tok).replace("\n", "↵").replace(" ", "&nbsp;") or "∅"
        cls = "tok focus" if i == example["focus"] else "tok"
        title = "not stored" if v is None else repr(float(v))
        spans.append(f'<span class="{cls}" style="background:{colour(v, top)}" title="{title}" '
                     f'data-act="{"" if v is None else v}">{text}</span>')
    return (f'<div class="ex"><span class="val">{example["activation"]:.4g}</span>{"".join(spans)} '
            f'<small>({esc(example["doc"])} @ {example["position"]})</small></div>')


def table(rows: list[dict], columns: list[str], link=None, sort_links: dict | None = None) -> str:
    head = "".join(f'<th><a href="{sort_links[c]}">{esc(c)}</a></th>' if sort_links else f"<th>{esc(c)}</th>"
                   for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            inner = fmt(v)
            if link and c == columns[0]:
                inner = f'<a href="{link(r)}">{inner}</a>'
            cells.append(f'<td class="{"num" if isinstance(v, (int, float)) else ""}">{inner}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def overview(o: dict) -> str:
    sites = o["sites"]
    note = (f'<p class="note"><b>{esc(o["model"])}</b>: {o["n_tokens"]:,} stored tokens from {o["n_docs"]} documents, '
            f'context {o["context"]}, stored as {esc(o["storage_dtype"])}; index with the top {o["index"]["k"]} '
            f'examples per neuron{" (one per document)" if o["index"]["per_doc"] else ""}.</p>')
    rows = table(sites, ["site", "neurons", "max", "rms", "median_std"], link=lambda r: f"/site/{quote(r['site'])}")
    kinds: dict[str, list] = {}                                   # site kind -> its sites with a layer, in order
    for s in sites:
        kind, _, layer = s["site"].partition(".")
        if layer.isdigit():
            kinds.setdefault(kind, []).append((int(layer), s))
    spec = {"data": [{"x": [L for L, _ in sorted(v, key=lambda t: t[0])],
                      "y": [s[key] for _, s in sorted(v, key=lambda t: t[0])], "name": f"{kind} {key}",
                      "mode": "lines+markers", "type": "scatter"}
                     for kind, v in kinds.items() for key in ("rms", "max", "median_std")],
            "layout": {"title": "laminar profile (from the index): per layer, over the neurons of each site",
                       "yaxis": {"type": "log"}, "xaxis": {"title": "layer"}, "margin": {"t": 40}}}
    return page(f"lamina browse: {o['model']}", note + plot("profile", spec) + "<h2>Sites</h2>" + rows, plots=True)


def site_page(site: str, rows: list[dict], columns: list[str], params: dict, n_total: int, n_shown: int) -> str:
    def sort_link(c):
        desc = "0" if params.get("sort") == c and params.get("desc", "1") == "1" else "1"
        return "?" + urlencode({**params, "sort": c, "desc": desc})

    numeric = [c for c in columns if c not in ("neuron", "top_token")]
    inputs = "".join(f'<label>{esc(c)} &ge; <input name="min.{esc(c)}" value="{esc(params.get("min." + c, ""))}"> '
                     f'&le; <input name="max.{esc(c)}" value="{esc(params.get("max." + c, ""))}"></label><br>'
                     for c in numeric)
    form = (f'<details><summary>filter</summary><form class="filters" method="get">{inputs}'
            f'<input type="hidden" name="sort" value="{esc(params.get("sort", "max"))}">'
            f'<button type="submit">apply</button></form></details>')
    note = f"<p>{n_shown} of {n_total} neurons shown (sorted by {esc(params.get('sort', 'max'))}).</p>"
    body = form + note + table(rows, columns, link=lambda r: f"/neuron/{quote(site)}/{r['neuron']}",
                               sort_links={c: sort_link(c) for c in columns})
    return page(f"{site}: neurons", body)


def neuron_page(r: dict) -> str:
    top = r["max"] if r["max"] > 0 else max(abs(r["min"]), 1e-12)
    stats = table([{k: r[k] for k in ("n", "max", "mean", "std", "min", "frac_pos")}],
                  ["n", "max", "mean", "std", "min", "frac_pos"])
    h = r["histogram"]
    edges = h["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    keep = [i for i, c in enumerate(h["counts"]) if c]
    spec = {"data": [{"type": "bar", "x": [centers[i] for i in keep], "y": [h["counts"][i] for i in keep],
                      "width": [edges[i + 1] - edges[i] for i in keep]}],
            "layout": {"title": "histogram (signed-log bins)", "yaxis": {"type": "log"}, "margin": {"t": 40},
                       "xaxis": {"title": "activation (bin centre)"}}}
    examples = "".join(heatmap(e, top) for e in r["top_examples"]) or "<p>none</p>"
    by_bin: dict[int, list] = {}
    for e in r["quantile_samples"]:
        by_bin.setdefault(e["bin"], []).append(e)
    q = r["quantile_edges"]
    samples = "".join(f"<h3>quantile bin {b + 1}: {q[b]:.3g} to {q[b + 1]:.3g}</h3>"
                      + "".join(heatmap(e, top) for e in es) for b, es in sorted(by_bin.items(), reverse=True))
    tuning = ""
    if r["tuning"]:
        cols = [c for c in r["tuning"][0] if c not in ("run_index",)]
        tuning = "<h2>Tuning</h2>" + table(r["tuning"], cols)
    site, index = quote(r["site"]), r["index"]
    body = (stats + f'<p><a href="/projection/{site}/{index}">vocabulary projection</a> (loads the model) · '
            f'<a href="/api/neuron/{site}/{index}">JSON</a></p>' + plot("hist", spec) + tuning
            + f"<h2>Top {len(r['top_examples'])} examples</h2>"
            + '<p class="note">colour: activation / the neuron\'s max (orange positive, blue negative); '
              "hover a token for its exact value.</p>" + f'<div id="top">{examples}</div>'
            + "<h2>Quantile samples</h2>" + (samples or "<p>none</p>"))
    return page(f"{r['site']}:{r['index']}", body, plots=True)


def projection_page(site: str, index: int, rows: list[dict]) -> str:
    parts = []
    for side, view in dict.fromkeys((r["side"], r["view"]) for r in rows):
        chosen = [r for r in rows if (r["side"], r["view"]) == (side, view)]
        parts.append(f"<h2>{esc(side)}: {esc(view)}</h2>" + table(chosen, ["direction", "rank", "token", "score"]))
    return page(f"{site}:{index} vocabulary projection", "".join(parts) + f'<p><a href="/neuron/{quote(site)}/{index}">'
                "back to the neuron</a></p>")


def search_page(sites: list[str], result: dict | None, query: str, site: str) -> str:
    options = "".join(f'<option{" selected" if s == site else ""}>{esc(s)}</option>' for s in sites)
    form = (f'<form method="get" action="/search"><input name="q" id="q" value="{esc(query)}" placeholder="a token"> '
            f'<select name="site">{options}</select> <button type="submit" id="go">search</button></form>')
    body = form
    if result is not None:
        body += (f"<p>{result['occurrences']} stored occurrences of {', '.join(repr(t) for t in result['tokens'])} "
                 f"(ids {result['token_ids']}); neurons of {esc(site)} by mean activation on them:</p>")
        body += table(result["neurons"], ["neuron", "mean_on_token", "z", "max", "mean"],
                      link=lambda r: f"/neuron/{quote(site)}/{r['neuron']}")
    return page("token search", body)
