"""Readings through the unembedding, no corpus needed: `lamina logit-lens` and `lamina project`."""
from __future__ import annotations

import json
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
    check_count,
    console,
    dump,
    load,
    option,
    user_errors,
)


@app.command("logit-lens")
@user_errors
def logit_lens_command(
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    text: list[str] | None = TextOpt,
    file: Path | None = FileOpt,
    truncate: bool = TruncOpt,
    k: int = option("-k", 5, more="Here: top tokens per layer and position."),
    out: Path | None = option("--out", more="Here: logit_lens.csv, logit_lens_layers.csv and two PNGs."),
    as_json: bool = JsonOpt,
):
    """The logit lens: each block's raw residual through the model's own final norm and unembedding."""
    from rich.text import Text

    from lamina.analyses.vocab.logit_lens import logit_lens
    from lamina.data.texts import read_texts
    from lamina.report.output import atomic_output, check_output

    if out is not None:
        check_output(out)
    texts = read_texts(text, file)
    lm = load(model, seed, device, dtype)
    check_count("-k", k, lm.vocab_size, "the vocabulary")
    result = logit_lens(lm, texts, k=k, truncate=truncate, progress=not as_json)
    if out is not None:
        from lamina.report.logit_lens_plot import plot_lens_heatmap, plot_lens_layers

        table = result.table.assign(top_tokens=result.table["top_tokens"].map(json.dumps),
                                    top_probs=result.table["top_probs"].map(json.dumps))
        with atomic_output(out) as tmp:
            table.to_csv(tmp / "logit_lens.csv", index=False)
            result.per_layer.to_csv(tmp / "logit_lens_layers.csv", index=False)
            plot_lens_layers(result, tmp / "logit_lens_layers.png")
            plot_lens_heatmap(result, tmp / "logit_lens_heatmap.png")
    if as_json:
        print(dump(result.to_dict()))
        return
    # Text titles: rich would turn "random:llama:" into an emoji.
    table = Table(title=Text(f"{result.model}: logit lens on raw resid_post.L, means over "
                             f"{result.info['n_tokens']} tokens of {len(result.texts)} text(s)"))
    for col in ("block", "KL(final||lens)", "entropy", "rank of final top", "median rank", "top-1 agrees"):
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
    k: int = option("-k", 20, more="Here: tokens per list."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    out: Path | None = option("--out", more="Here: project.csv."),
    as_json: bool = JsonOpt,
):
    """Vocabulary projection of a neuron: the tokens it promotes and suppresses, and the tokens that drive it."""
    from rich.text import Text

    from lamina.analyses.vocab.projections import project
    from lamina.report.output import atomic_output, check_output

    if out is not None:
        check_output(out)
    lm = load(model, seed, device, dtype)
    check_count("-k", k, lm.vocab_size, "the vocabulary")
    df = project(lm, neuron, k=k)
    if out is not None:
        with atomic_output(out) as tmp:
            df.to_csv(tmp / "project.csv", index=False)
    if as_json:
        print(dump({"model": lm.spec, "neuron": df["neuron"].iat[0], "note": df.attrs["note"],
                     "rows": df.to_dict(orient="records")}))
        return
    for (side, view), group in df.groupby(["side", "view"], sort=False):
        table = Table(title=Text(f"{lm.spec} {df['neuron'].iat[0]}: {side} side, {view}"))
        lists = list(group["direction"].unique())
        for direction in lists:
            table.add_column(direction, justify="left")
            table.add_column("score", justify="right")
        columns = [group[group["direction"] == d] for d in lists]
        for i in range(max(len(c) for c in columns)):
            cells = []
            for c in columns:
                cells += [Text(repr(c["token"].iat[i])), f"{c['score'].iat[i]:.3f}"] if i < len(c) else ["", ""]
            table.add_row(*cells)
        console.print(table)
    notes = ([df.attrs["note"]] if (df["side"] == "output").any() else []) + ["input-side scores skip the block's input norm"]
    console.print(Text("; ".join(notes), style="dim"))
    if out is not None:
        console.print(f"wrote {out / 'project.csv'}")
