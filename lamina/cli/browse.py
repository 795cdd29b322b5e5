"""A store's neuron index and the local neuron browser: `lamina index` and `lamina browse`."""
from __future__ import annotations

from pathlib import Path

import typer

from lamina.cli.checks import path_check
from lamina.cli.common import JsonOpt, app, check_count, console, dump, option, user_errors


@app.command("index")
@user_errors
def index_command(
    store: Path = typer.Argument(..., help="Activation store folder (lamina extract).",
                                 callback=path_check("input_folder")),
    k: int = option("-k", 20, more="Here: top examples per neuron."),
    per_doc: bool = typer.Option(False, "--per-doc", help="At most one top example per document."),
    sites: str | None = typer.Option(None, "--sites", help="Comma-separated stored sites (default: all)."),
    out: Path | None = option("--out", more="Here: the index folder (default: STORE/index)."),
    as_json: bool = JsonOpt,
):
    """One streaming pass over a store: per neuron max, mean, std, fraction > 0, histogram, top-k examples
    with their context, quantile samples; written beside the store for `lamina browse`."""
    from lamina.index import IndexSettings, write_index
    from lamina.store import ActivationStore
    from lamina.store.columns import check_sites

    stored = ActivationStore(store)
    check_count("-k", k, stored.n_rows, "the store's tokens")
    chosen = [s.strip() for s in sites.split(",") if s.strip()] if sites else None
    if chosen:
        check_sites(stored, chosen)
    path = write_index(stored, out, IndexSettings(k=k, per_doc=per_doc), chosen, progress=not as_json)
    summary = {"index": str(path), "sites": chosen or stored.sites, "n_rows": stored.n_rows}
    if as_json:
        print(dump(summary))
        return
    console.print(f"wrote {path}: {stored.n_rows} tokens x {len(summary['sites'])} site(s); "
                  f"browse it with: lamina browse {store}")


@app.command("browse")
@user_errors
def browse_command(
    store: Path = typer.Argument(..., help="Activation store folder with an index (lamina index).",
                                 callback=path_check("input_folder")),
    tune: list[Path] | None = typer.Option(None, "--tune", callback=path_check("input_folder"), help="A `lamina tune` output folder (repeatable)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: this machine only)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to serve on."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a --host other than loopback (anyone reaching the port reads the store)."),
):
    """A local web app over a store's index: overview, neuron tables, neuron pages, token search, JSON API."""
    from lamina.browse.app import serve
    from lamina.browse.guard import check_bind

    warning = check_bind(host, port, allow_remote)
    if warning:
        console.print(warning, style="yellow", markup=False, highlight=False, soft_wrap=True)
    serve(store, tune or (), host=host, port=port, allow_remote=allow_remote,  # the store is checked first
          ready=lambda: console.print(f"lamina browse: http://{host}:{port}/  (Ctrl-C to stop)"))
