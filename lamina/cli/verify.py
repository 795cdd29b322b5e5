"""`lamina verify`: hooks on every block vs output.hidden_states, and the table it prints."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lamina.cli.common import (
    DeviceOpt,
    DtypeOpt,
    FileOpt,
    JsonOpt,
    ModelOpt,
    SeedOpt,
    TextOpt,
    TruncOpt,
    app,
    console,
    dump,
    err_console,
    load,
    option,
    user_errors,
)


@app.command()
@user_errors
def verify(
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    text: list[str] | None = TextOpt,
    file: Path | None = FileOpt,
    truncate: bool = TruncOpt,
    out: Path | None = option("--out", more="Here: verify.json and verify.png."),
    as_json: bool = JsonOpt,
):
    """The founding experiment: hooks on every block vs output.hidden_states, and the hidden-state map."""
    import lamina
    from lamina.data.texts import read_texts
    from lamina.report.output import atomic_output, check_output

    if out is not None:
        check_output(out)
    texts = read_texts(text, file)
    lm = load(model, seed, device, dtype)
    with err_console.status("running the founding experiment..."):
        result = lamina.verify(lm, texts, truncate=truncate)
    if out is not None:
        from lamina.report.verify_plot import plot_verify

        with atomic_output(out) as tmp:
            (tmp / "verify.json").write_text(dump(result))
            plot_verify(result, tmp / "verify.png")
    if as_json:
        print(dump(result))
    else:
        _print_verify(result, out)
    raise typer.Exit(0 if result["ok"] else 1)


def _print_verify(r: dict, out: Path | None) -> None:
    table = Table(title=f"{r['model']} ({r['architecture']}, {r['n_layers']} blocks): hook on block L vs hidden_states[L+1]")
    for col in ("block", "hidden index", "max |diff|", "max |hook|", "max |hidden|"):
        table.add_column(col, justify="right")
    for row in r["layers"]:
        diff = row["max_abs_diff"]
        style = "green" if diff == 0 else "yellow"
        table.add_row(str(row["layer"]), str(row["hidden_index"]), f"[{style}]{diff:.3g}[/]",
                      f"{row['hook_max_abs']:.4g}", f"{row['hidden_max_abs']:.4g}")
    console.print(table)
    f = r["final"]
    console.print(
        f"last block: raw hook vs hidden_states[-1] max |diff| = [yellow]{f['raw_max_abs_diff']:.4g}[/] "
        f"(raw max |x| {f['raw_max_abs']:.4g}, after {r['final_norm_module']} {f['normed_max_abs']:.4g}); "
        f"through {r['final_norm_module']}: [green]{f['normed_max_abs_diff']:.3g}[/]"
    )
    mapping = ", ".join(f"hidden.{i} = {site}" for i, site in r["hidden_state_map"].items())
    console.print(f"hidden-state map: {mapping}")
    console.print("[bold green]ok[/]: the map holds" if r["ok"] else "[bold red]NOT ok[/]: the map does not hold")
    if out is not None:
        console.print(f"wrote {out / 'verify.json'} and {out / 'verify.png'}")
