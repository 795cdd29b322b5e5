"""`lamina browse`: a Starlette app over a store and its neuron index (read-only, 127.0.0.1 by default).

    /                               overview: model, sites, token counts, laminar profile plot
    /site/{site}                    the site's neuron table (columns chosen, sort, filter, pages; --tune runs joined)
    /neuron/{site}/{index}          top examples as token heatmaps, histogram, quantile samples, tuning;
                                    ?text=... shows the neuron's activation on every token of a text of yours
    /projection/{site}/{index}      vocabulary projection (`lamina project`; loads the model once)
    /search?q=TOKEN&site=SITE       the neurons that fire most on a token
    /api/neuron/{site}/{index}      the neuron page's data as JSON (also /api/overview, /api/search)
    /static/plotly.min.js           plotly.js from the plotly package, the only file served
Names in a URL are looked up among the index's sites; nothing in a request becomes a file path. Pages are
Jinja2 templates with autoescape (`pages.py`); `guard.Guard` checks the Host header and sets the security
headers. Handlers are plain functions, so Starlette runs them in its thread pool: a model loading for one
page never holds up another.
"""
from __future__ import annotations

from pathlib import Path

from lamina.browse import pages
from lamina.browse.data import BrowseData, NotFound, distinct_windows
from lamina.browse.guard import Guard, allowed_hosts, check_bind
from lamina.errors import InputError, LaminaError
from lamina.report.jsonio import plain


def filtered(table, params: dict):
    """Rows of a neuron table kept by min.COL / max.COL bounds, sorted by `sort` (desc unless desc=0)."""
    for key, raw in params.items():
        bound, _, col = key.partition(".")
        if bound not in ("min", "max") or not raw.strip():
            continue
        if col not in table.columns:
            raise InputError(f"no column {col!r} to filter on")
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"{key}={raw!r} is not a number") from None
        table = table[table[col] >= value] if bound == "min" else table[table[col] <= value]
    sort = params.get("sort", "max")
    if sort not in table.columns:
        raise InputError(f"no column {sort!r} to sort by")
    return table.sort_values(sort, ascending=params.get("desc", "1") == "0", na_position="last")


def _count(params, name: str, default: int, high: int) -> int:
    raw = params.get(name, str(default))
    if not raw.isdigit():
        raise InputError(f"{name}={raw!r} is not a whole number")
    return min(int(raw), high)


def create_app(store: str | Path, tune=(), hosts=None):
    """The ASGI app for one store (and optional tune runs), answering to `hosts` (default: loopback names)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
    from starlette.routing import Route
    from starlette.templating import Jinja2Templates

    data = BrowseData(store, tune)
    data.warm_up()
    plotly_js = Path(__import__("plotly").__file__).parent / "package_data" / "plotly.min.js"
    templates = Jinja2Templates(env=pages.environment(),
                                context_processors=[lambda request: {"nonce": request.state.nonce,
                                                                     "model": data.model}])

    def render(request, name: str, context: dict, status: int = 200):
        return templates.TemplateResponse(request, name, context, status_code=status)

    def neuron_args(request) -> tuple[str, int]:
        site, raw = request.path_params["site"], request.path_params["index"]
        if not raw.isdigit():
            raise NotFound(f"neuron index {raw!r} is not a number")
        return site, int(raw)

    def overview(request):
        return render(request, "overview.html", pages.overview(plain(data.overview())))

    def site(request):
        name = request.path_params["site"]
        params = dict(request.query_params)
        table = data.site_table(name)
        columns = list(table.columns.drop("top_token_id"))
        chosen = request.query_params.getlist("col")
        unknown = [c for c in chosen if c not in columns]
        if unknown:
            raise InputError(f"no column {unknown[0]!r} in this table")
        shown = chosen or pages.default_columns(columns, [t.attrs["folder"] for t in data.tune])
        if "neuron" not in shown:
            shown = ["neuron", *shown]
        rows = filtered(table, params)
        offset = _count(params, "offset", 0, max(len(rows) - 1, 0))
        limit = max(1, _count(params, "limit", pages.PAGE_ROWS, pages.MAX_PAGE_ROWS))
        part = plain(rows.iloc[offset:offset + limit][shown].to_dict(orient="records"))
        return render(request, "site.html", pages.site_page(
            name, part, columns, shown, params, len(table), len(rows), offset, limit, params.get("sort", "max"),
            params.get("desc", "1") == "0"))

    def neuron(request):
        site_name, index = neuron_args(request)
        record = plain(data.neuron(site_name, index))
        record["top_examples"], record["hidden_overlapping"] = distinct_windows(
            record["top_examples"], data.index.settings["before"] + data.index.settings["after"])
        text = request.query_params.get("text", "")
        live, loading = None, False
        if text.strip():
            lm = data.lm_if_ready()
            loading = lm is None
            live = None if loading else plain(data.live(site_name, index, text))
        return render(request, "neuron.html", pages.neuron_page(record, text, live, loading, data.MAX_TEXT))

    def projection(request):
        site_name, index = neuron_args(request)
        data.check_neuron(site_name, index)
        if data.lm_if_ready() is None:
            return render(request, "loading.html", {"title": f"{site_name}:{index} vocabulary projection",
                                                    "plots": False}, status=503)
        return render(request, "projection.html",
                      pages.projection_page(site_name, index, plain(data.projection(site_name, index))))

    def search(request):
        query = request.query_params.get("q", "")
        site_name = request.query_params.get("site", data.index.sites[0])
        result = data.search(query, site_name) if query.strip() else None
        return render(request, "search.html", pages.search_page(data.index.sites, plain(result), query, site_name))

    def api_neuron(request):
        return JSONResponse(plain(data.neuron(*neuron_args(request))))

    def api_overview(request):
        return JSONResponse(plain(data.overview()))

    def api_search(request):
        return JSONResponse(plain(data.search(request.query_params.get("q", ""),
                                              request.query_params.get("site", data.index.sites[0]))))

    def plotly(request):
        return FileResponse(plotly_js, media_type="application/javascript")

    def message(request, status: int, text: str):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": text}, status_code=status)
        title = "not found" if status == 404 else "error"
        return render(request, "error.html", pages.message_page(title, text), status=status)

    async def not_found(request, exc):
        return message(request, 404, str(exc))

    async def bad_input(request, exc):
        return message(request, 400, str(exc))

    async def http_error(request, exc):
        text = "no such page" if exc.status_code == 404 else exc.detail
        return message(request, exc.status_code, text)

    async def server_error(request, exc):
        return PlainTextResponse("internal error (see the server's log)", status_code=500)

    routes = [Route("/", overview), Route("/site/{site}", site), Route("/neuron/{site}/{index}", neuron),
              Route("/projection/{site}/{index}", projection), Route("/search", search),
              Route("/api/neuron/{site}/{index}", api_neuron), Route("/api/overview", api_overview),
              Route("/api/search", api_search), Route("/static/plotly.min.js", plotly)]
    handlers = {NotFound: not_found, LaminaError: bad_input, HTTPException: http_error, Exception: server_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.data = data
    return Guard(app, set(hosts) if hosts is not None else allowed_hosts("127.0.0.1"))


def serve(store, tune=(), host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False,
          ready=lambda: None) -> None:
    """Run the app with uvicorn until Ctrl-C (a non-loopback `host` needs `allow_remote`); `ready()` is called
    once the store and its index have been opened and checked."""
    check_bind(host, port, allow_remote)
    try:
        import uvicorn
    except ImportError:
        raise InputError("lamina browse needs the browse extra: pip install 'lamina[browse]'") from None
    app = create_app(store, tune, allowed_hosts(host))
    ready()
    uvicorn.run(app, host=host, port=port, log_level="warning")
