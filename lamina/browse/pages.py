"""The browser's HTML: Jinja2 templates (lamina/browse/templates/, autoescape on) and the data each page needs.

Nothing here builds HTML from strings. Text from a store, an index, a tokenizer or a request reaches a page
only through the templates' autoescape (as text nodes and quoted attributes); plot data reaches the page's
one inline script as JSON escaped for `<script>` (`script_json` in report/templating.py). Plots are Plotly
specs drawn by the plotly.js that ships with the `plotly` Python package (served locally: no network, no build step).
"""
from __future__ import annotations

from urllib.parse import quote, urlencode

from lamina.report.templating import environment as template_environment

BASE_COLUMNS = ["neuron", "top_token", "max", "mean", "std", "frac_pos"]   # a site table's default columns
TUNE_COLUMNS = ("q", "significant", "cohens_d", "d", "t", "statistic")   # of each tune run, the first 3 present
PAGE_ROWS = 100                                                          # neurons per page of a site table
MAX_PAGE_ROWS = 1000


def colour(value, top) -> str:
    """Orange for positive activations, blue for negative, opacity = |value| / the neuron's max."""
    if not isinstance(value, (int, float)) or not top or top <= 0:
        return "transparent"
    a = min(1.0, abs(value) / top)
    return f"rgba(255,110,0,{a:.3f})" if value >= 0 else f"rgba(40,90,255,{a:.3f})"


def environment():
    """The Jinja2 environment of the browser's templates (package data, autoescape on: report/templating.py)."""
    env = template_environment("lamina.browse")
    env.filters.update(colour=colour, fmt3=env.filters["g3"], repr_float=lambda v: repr(float(v)))
    return env


def site_link(row) -> str:
    return f"/site/{quote(row['site'], safe='')}"


def neuron_link(site: str):
    return lambda row: f"/neuron/{quote(site, safe='')}/{int(row['neuron'])}"


def overview(o: dict) -> dict:
    kinds: dict[str, list] = {}                                   # site kind -> its sites with a layer, in order
    for s in o["sites"]:
        kind, _, layer = s["site"].rpartition(".")
        if layer.isdigit():
            kinds.setdefault(kind, []).append((int(layer), s))
    traces = []
    for kind, v in kinds.items():
        v = sorted(v, key=lambda t: t[0])
        for key in ("rms", "max", "median_std"):
            traces.append({"x": [L for L, _ in v], "y": [s[key] for _, s in v], "name": f"{kind} {key}",
                           "mode": "lines+markers", "type": "scatter"})
    spec = {"data": traces, "layout": {"title": {"text": "laminar profile (from the index): per layer, over the "
                                                          "neurons of each site"},
                                       "yaxis": {"type": "log"}, "xaxis": {"title": {"text": "layer"}},
                                       "margin": {"t": 40}}}
    return {"title": f"lamina browse: {o['model']}", "o": o, "spec": spec, "plots": True, "site_link": site_link}


def default_columns(columns: list[str], tune_runs: list[str]) -> list[str]:
    """The short default of a site table: the index's columns, and up to 3 key columns of each tune run."""
    shown = [c for c in BASE_COLUMNS if c in columns]
    for run in tune_runs:
        shown += [f"{run}.{c}" for c in TUNE_COLUMNS if f"{run}.{c}" in columns][:3]
    return shown


def site_page(site: str, rows: list[dict], columns: list[str], shown: list[str], params: dict, n_total: int,
              n_kept: int, offset: int, limit: int, sort: str, ascending: bool) -> dict:
    keep = {k: v for k, v in params.items() if k not in ("col", "offset")}
    cols = [("col", c) for c in shown]

    def link(**change):
        merged = {**keep, **{k: v for k, v in change.items()}}
        return "?" + urlencode(list(merged.items()) + cols)

    def sort_link(c):
        desc = "0" if sort == c and not ascending else "1"
        return link(sort=c, desc=desc)

    return {"title": f"{site}: neurons", "rows": rows, "shown_columns": shown, "all_columns": columns,
            "numeric": [c for c in columns if c not in ("neuron", "top_token")], "params": params,
            "keep_params": keep, "sort": sort, "ascending": ascending, "n_total": n_total, "n_kept": n_kept,
            "first": min(offset + 1, n_kept), "last": min(offset + limit, n_kept), "limit": limit,
            "prev_link": link(offset=max(0, offset - limit)) if offset > 0 else None,
            "next_link": link(offset=offset + limit) if offset + limit < n_kept else None,
            "sort_links": {c: sort_link(c) for c in shown}, "neuron_link": neuron_link(site), "plots": False}


def neuron_page(r: dict, text: str = "", live: dict | None = None, live_loading: bool = False,
                max_text: int = 2000) -> dict:
    top = r["max"] if r["max"] > 0 else max(abs(r["min"]), 1e-12)
    h = r["histogram"]
    edges = h["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    keep = [i for i, c in enumerate(h["counts"]) if c]
    spec = {"data": [{"type": "bar", "x": [centers[i] for i in keep], "y": [h["counts"][i] for i in keep],
                      "width": [edges[i + 1] - edges[i] for i in keep]}],
            "layout": {"title": {"text": "histogram (signed-log bins)"}, "yaxis": {"type": "log"},
                       "margin": {"t": 40}, "xaxis": {"title": {"text": "activation (bin centre)"}}}}
    by_bin: dict[int, list] = {}
    for e in r["quantile_samples"]:
        by_bin.setdefault(e["bin"], []).append(e)
    tuning_columns = list(dict.fromkeys(c for t in r["tuning"] for c in t if c not in ("run", "run_index")))
    site = quote(r["site"], safe="")
    return {"title": f"{r['site']}:{r['index']}", "r": r, "top": top, "spec": spec, "plots": True,
            "bins": sorted(by_bin.items(), reverse=True), "q": r["quantile_edges"], "tuning_columns": tuning_columns,
            "projection_link": f"/projection/{site}/{r['index']}", "api_link": f"/api/neuron/{site}/{r['index']}",
            "text": text, "live": live, "live_loading": live_loading, "max_text": max_text}


def projection_page(site: str, index: int, rows: list[dict]) -> dict:
    parts = []
    for side, view in dict.fromkeys((r["side"], r["view"]) for r in rows):
        parts.append((f"{side}: {view}", [r for r in rows if (r["side"], r["view"]) == (side, view)]))
    return {"title": f"{site}:{index} vocabulary projection", "parts": parts, "plots": False,
            "neuron_link": f"/neuron/{quote(site, safe='')}/{index}"}


def search_page(sites: list[str], result: dict | None, query: str, site: str) -> dict:
    return {"title": "token search", "sites": sites, "result": result, "query": query, "site": site,
            "neuron_link": neuron_link(site), "plots": False}


def message_page(title: str, text: str) -> dict:
    return {"title": title, "message": text, "plots": False}
