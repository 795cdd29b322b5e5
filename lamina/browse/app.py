"""`lamina browse`: a Starlette app over a store and its neuron index (read-only, 127.0.0.1 by default).

    /                               overview: model, sites, token counts, laminar profile plot
    /site/{site}                    the site's neuron table (sort, filter; --tune runs' columns joined)
    /neuron/{site}/{index}          top examples as token heatmaps, histogram, quantile samples, tuning
    /projection/{site}/{index}      vocabulary projection (`lamina project`; loads the model once)
    /search?q=TOKEN&site=SITE       the neurons that fire most on a token
    /api/neuron/{site}/{index}      the neuron page's data as JSON (also /api/overview, /api/search)
    /static/plotly.min.js           plotly.js from the plotly package, the only file served
Names in a URL are looked up among the index's sites; nothing in a request becomes a file path.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lamina.browse import pages
from lamina.browse.data import BrowseData, NotFound
from lamina.errors import InputError, LaminaError

ROWS_SHOWN = 500


def _plain(x):
    """JSON-safe values: NaN -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


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


def create_app(store: str | Path, tune=()):
    """The ASGI app for one store (and optional tune runs)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.routing import Route

    data = BrowseData(store, tune)
    plotly_js = Path(__import__("plotly").__file__).parent / "package_data" / "plotly.min.js"

    def neuron_args(request) -> tuple[str, int]:
        site, raw = request.path_params["site"], request.path_params["index"]
        if not raw.isdigit():
            raise NotFound(f"neuron index {raw!r} is not a number")
        return site, int(raw)

    async def overview(request):
        return HTMLResponse(pages.overview(data.overview()))

    async def site(request):
        name = request.path_params["site"]
        params = dict(request.query_params)
        table = data.site_table(name)
        rows = filtered(table, params)
        return HTMLResponse(pages.site_page(name, _plain(rows.head(ROWS_SHOWN).to_dict(orient="records")),
                                            list(table.columns.drop("top_token_id")), params, len(table),
                                            min(len(rows), ROWS_SHOWN)))

    async def neuron(request):
        return HTMLResponse(pages.neuron_page(_plain(data.neuron(*neuron_args(request)))))

    async def projection(request):
        site, index = neuron_args(request)
        return HTMLResponse(pages.projection_page(site, index, _plain(data.projection(site, index))))

    async def search(request):
        query = request.query_params.get("q", "")
        site_name = request.query_params.get("site", data.index.sites[0])
        result = data.search(query, site_name) if query.strip() else None
        return HTMLResponse(pages.search_page(data.index.sites, _plain(result), query, site_name))

    async def api_neuron(request):
        return JSONResponse(_plain(data.neuron(*neuron_args(request))))

    async def api_overview(request):
        return JSONResponse(_plain(data.overview()))

    async def api_search(request):
        return JSONResponse(_plain(data.search(request.query_params.get("q", ""),
                                               request.query_params.get("site", data.index.sites[0]))))

    async def plotly(request):
        return FileResponse(plotly_js, media_type="application/javascript")

    def message(request, status: int, text: str):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": text}, status_code=status)
        return HTMLResponse(pages.page("not found" if status == 404 else "error", f"<p>{pages.esc(text)}</p>"),
                            status_code=status)

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
    return app


def serve(store, tune=(), host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the app with uvicorn until Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        raise InputError("lamina browse needs the browse extra: pip install 'lamina[browse]'") from None
    uvicorn.run(create_app(store, tune), host=host, port=port, log_level="warning")
