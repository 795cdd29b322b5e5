"""`lamina tune-compare RUN_A RUN_B`: the concordance of two `lamina tune --out` folders."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from lamina.cli.checks import path_check
from lamina.cli.common import JsonOpt, app, console, dump, option, user_errors


@app.command("tune-compare")
@user_errors
def tune_compare(
    run_a: Path = typer.Argument(..., help="The --out folder of one `lamina tune` run.",
                                callback=path_check("input_folder")),
    run_b: Path = typer.Argument(..., help="The --out folder of another run (same site and layers).",
                                callback=path_check("input_folder")),
    statistic: str = typer.Option("t", "--statistic", help="The per-neuron column compared: t (default), r, d, ..."),
    out: Path | None = option("--out", more="Here: comparison.json, the CSV tables and comparison.png."),
    as_json: bool = JsonOpt,
):
    """Do two tune runs agree? Correlation of the per-neuron statistic, overlap of the significant sets, per layer."""
    from lamina.analyses.tuning.compare import compare_tune_runs, write_comparison
    from lamina.report.output import atomic_output, check_output

    if out is not None:
        check_output(out)
    cmp = compare_tune_runs(run_a, run_b, statistic)
    if out is not None:
        with atomic_output(out) as tmp:
            write_comparison(cmp, tmp)
    if as_json:
        print(dump(cmp.to_json()))
        return
    la, lb = cmp.settings["labels"]
    t = Table(title=Text(f"{statistic}: {la} against {lb}"))
    for c in ("layer", "neurons", "Pearson r", "Spearman rho", f"sig. {la}", f"sig. {lb}", "both", "expected",
              "p (overlap)", "same sign"):
        t.add_column(c, justify="right")
    rows = [(str(r["layer"]), r) for r in cmp.per_layer.to_dict("records")] + [("all", cmp.overall)]
    for name, r in rows:
        t.add_row(name, str(r["n_neurons"]), f"{r['pearson_r']:.3f}", f"{r['spearman_rho']:.3f}", str(r["n_sig_a"]),
                  str(r["n_sig_b"]), str(r["overlap"]), f"{r['expected_overlap']:.1f}", f"{r['p_overlap']:.2g}",
                  f"{r['sign_agreement']:.2f}")
    console.print(t)
    console.print(Text(f"note: {cmp.settings['note']}", style="dim"))
    if out is not None:
        console.print(f"wrote comparison.json, per_layer.csv, joined_neurons.csv, comparison.png to {out}")
