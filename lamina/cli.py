"""The command line: every verb is a thin shell over the Python function of the same name.

User mistakes (`LaminaError`) print one line on stderr and exit with status 2.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from lamina.errors import LaminaError

app = typer.Typer(
    help="lamina: read a transformer language model's insides correctly, layer by layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

ModelOpt = typer.Option("smollm2-135m", "--model", "-m", help="Model spec: smollm2-135m, random:<type>, hub id or folder.")
SeedOpt = typer.Option(0, "--seed", help="Seed for random:<type> models.")
JsonOpt = typer.Option(False, "--json", help="Print the result as one JSON object.")
TextOpt = typer.Option(None, "--text", "-t", help="Input text (repeatable).")
FileOpt = typer.Option(None, "--file", "-f", help="File with one input text per non-blank line.")
TruncOpt = typer.Option(False, "--truncate", help="Cut texts longer than the model's context (with a warning).")


@app.callback()
def root() -> None:
    """lamina: read a transformer language model's insides correctly, layer by layer."""


def user_errors(fn):
    """Turn LaminaError into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LaminaError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _load(model: str, seed: int):
    import lamina

    with err_console.status(f"loading {model}..."):
        return lamina.load(model, seed=seed)


def _dump(obj) -> str:
    return json.dumps(obj, indent=2, default=float)


@app.command()
@user_errors
def verify(
    model: str = ModelOpt,
    seed: int = SeedOpt,
    text: Optional[List[str]] = TextOpt,
    file: Optional[Path] = FileOpt,
    truncate: bool = TruncOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write verify.json and verify.png here."),
    as_json: bool = JsonOpt,
):
    """The founding experiment: hooks on every block vs output.hidden_states, and the hidden-state map."""
    import lamina
    from lamina.data.texts import read_texts

    texts = read_texts(text, file)
    lm = _load(model, seed)
    result = lamina.verify(lm, texts, truncate=truncate)
    if out is not None:
        from lamina.report.verify_plot import plot_verify

        out.mkdir(parents=True, exist_ok=True)
        (out / "verify.json").write_text(_dump(result))
        plot_verify(result, out / "verify.png")
    if as_json:
        print(_dump(result))
    else:
        _print_verify(result, out)
    raise typer.Exit(0 if result["ok"] else 1)


def _print_verify(r: dict, out: Optional[Path]) -> None:
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


@app.command("logit-lens")
@user_errors
def logit_lens_command(
    model: str = ModelOpt,
    seed: int = SeedOpt,
    text: Optional[List[str]] = TextOpt,
    file: Optional[Path] = FileOpt,
    truncate: bool = TruncOpt,
    k: int = typer.Option(5, "-k", help="Top tokens kept per layer and position."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write logit_lens.csv, logit_lens_layers.csv and two PNGs here."),
    as_json: bool = JsonOpt,
):
    """The logit lens: each block's raw residual through the model's own final norm and unembedding."""
    from lamina.analyses.logit_lens import logit_lens
    from lamina.data.texts import read_texts
    from lamina.errors import InputError

    if k < 1:
        raise InputError(f"-k must be at least 1, not {k}")
    texts = read_texts(text, file)
    lm = _load(model, seed)
    result = logit_lens(lm, texts, k=k, truncate=truncate)
    if out is not None:
        from lamina.report.logit_lens_plot import plot_lens_heatmap, plot_lens_layers

        out.mkdir(parents=True, exist_ok=True)
        table = result.table.assign(top_tokens=result.table["top_tokens"].map(json.dumps),
                                    top_probs=result.table["top_probs"].map(json.dumps))
        table.to_csv(out / "logit_lens.csv", index=False)
        result.per_layer.to_csv(out / "logit_lens_layers.csv", index=False)
        plot_lens_layers(result, out / "logit_lens_layers.png")
        plot_lens_heatmap(result, out / "logit_lens_heatmap.png")
    if as_json:
        print(_dump(result.to_dict()))
        return
    table = Table(title=f"{result.model}: logit lens over {len(result.texts)} text(s), "
                        f"{result.info['n_tokens']} tokens (lens on raw resid_post.L)")
    for col in ("block", "mean KL(final||lens)", "mean entropy", "mean rank of final top", "median rank", "top-1 agrees"):
        table.add_column(col, justify="right")
    for r in result.per_layer.itertuples():
        table.add_row(str(r.layer), f"{r.kl:.4g}", f"{r.entropy:.3g}", f"{r.rank_of_final_top:.4g}",
                      f"{r.median_rank_of_final_top:g}", f"{r.top1_agreement:.0%}")
    console.print(table)
    console.print(f"last block's lens vs the model's logits: max |diff| = {result.last_layer_max_abs_diff:.3g}")
    if out is not None:
        console.print(f"wrote logit_lens.csv, logit_lens_layers.csv, logit_lens_layers.png, logit_lens_heatmap.png to {out}")


@app.command("project")
@user_errors
def project_command(
    neuron: str = typer.Option(..., "--neuron", "-n", help="A neuron SITE:INDEX: mlp_post.L:i, or q/k/v.L:h*d_head+j."),
    k: int = typer.Option(20, "-k", help="Tokens per list."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write project.csv here."),
    as_json: bool = JsonOpt,
):
    """Vocabulary projection of a neuron: the tokens it promotes and suppresses, and the tokens that drive it."""
    from lamina.analyses.projections import project

    lm = _load(model, seed)
    df = project(lm, neuron, k=k)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "project.csv", index=False)
    if as_json:
        print(_dump({"model": lm.spec, "neuron": df["neuron"].iat[0], "note": df.attrs["note"],
                     "rows": df.to_dict(orient="records")}))
        return
    for (side, view), group in df.groupby(["side", "view"], sort=False):
        table = Table(title=f"{lm.spec} {df['neuron'].iat[0]}: {side} side, {view}")
        lists = list(group["direction"].unique())
        for direction in lists:
            table.add_column(direction, justify="left")
            table.add_column("score", justify="right")
        columns = [group[group["direction"] == d] for d in lists]
        for i in range(max(len(c) for c in columns)):
            cells = []
            for c in columns:
                cells += [repr(c["token"].iat[i]), f"{c['score'].iat[i]:.3f}"] if i < len(c) else ["", ""]
            table.add_row(*cells)
        console.print(table)
    console.print(f"[dim]{df.attrs['note']}; input-side scores skip the block's input norm (directions too)[/]")
    if out is not None:
        console.print(f"wrote {out / 'project.csv'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
