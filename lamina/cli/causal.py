"""`lamina ablate` and `lamina steer`: causal checks (docs/CAUSAL.md); `lamina patch` is in `cli/patch.py`.

Every input is checked before the first forward pass (the output folder too, `check_output`), and every
file is written at the end through `atomic_output`, so a bad option leaves nothing half-written and an
interrupted run leaves the old results whole. JSON goes through `report/jsonio.py` (NaN as null).
"""
from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from lamina.cli.checks import path_check
from lamina.cli.common import (
    SAMPLED_TOKENS,
    BatchOpt,
    ContextOpt,
    CorpusOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    SeedOpt,
    SkipFirstOpt,
    TextFieldOpt,
    app,
    console,
    dump,
    load,
    option,
    user_errors,
)
from lamina.errors import InputError
from lamina.report.jsonio import write_json
from lamina.report.output import atomic_output, check_output

OutOpt = option("--out", more="Here: CSV tables, result.json and a PNG figure.")
SampledTokensOpt = option("--max-tokens", SAMPLED_TOKENS, more="Here: corpus tokens scored, spread over documents.")


MULTIPLIERS_HELP = ("Multipliers m, e.g. 0,1,2,4 or -2,2: each adds m x the site's mean activation norm over the "
                    "prompts x the unit direction (docs/OPTIONS.md). Was --alpha.")


def parse_indices(spec: str | None, what: str) -> tuple[int, ...] | None:
    """'3', '1,5,9' or '0-7,12' -> indices; None or 'all' -> None."""
    if spec is None or spec.strip() in ("", "all"):
        return None
    out = []
    for part in spec.replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise InputError(f"--{what} '{spec}': write indices 3, a list 1,5,9 or a range 0-7")
        out += range(int(m[1]), int(m[2] or m[1]) + 1)
    return tuple(dict.fromkeys(out))


def parse_positions(spec: str):
    if spec in ("all", "first"):
        return None if spec == "all" else "first"
    return parse_indices(spec, "positions")


def _docs(corpus: str, text_field: str):
    from lamina.data.corpus import load_corpus

    return load_corpus(corpus, text_field)


@app.command("ablate")
@user_errors
def ablate_command(
    site: str | None = option("--site", more="Here: one site with its layer, e.g. mlp_post.13 or q.4."),
    neurons: str | None = typer.Option(None, "--neurons", "-n", help="Neurons: 5, 1,5,9 or 0-7 (default all)."),
    heads: str | None = typer.Option(None, "--heads", help="q/k/v sites: whole heads, e.g. 0,3."),
    positions: str = typer.Option("all", "--positions", "-p", help="all, first, or token positions I,J."),
    method: str = typer.Option("zero", "--method", help="zero, mean (over the reference corpus) or resample."),
    store: Path | None = option("--store", more="mean: take the reference mean from it."),
    reference_tokens: int = typer.Option(20000, "--reference-tokens", min=0, help="mean/resample: reference tokens read (0: no limit)."),
    from_tune: Path | None = option("--from-tune", more="Test its neurons causally."),
    top: int = option("--top", 10, more="Here: neurons ablated per layer."),
    random_draws: int = typer.Option(20, "--random", min=1, max=10**4, help="--from-tune: random variance-matched draws per layer."),
    layers: str | None = option("--layers", more="Here: with --from-tune, the layers tested (default: the run's)."),
    max_pairs: int = option("--max-pairs", more="Here: with --from-tune, of the negation pairs."),
    loss_tokens: int = typer.Option(2048, "--loss-tokens", min=0, help="--from-tune: corpus tokens for the general loss (0: skip)."),
    random_loss: bool = typer.Option(False, "--random-loss", help="--from-tune: the general loss for every random draw too (slow)."),
    tune_metric: str | None = typer.Option(None, "--metric", help="--from-tune: loss (after the run's labelled tokens; default), kl (at them; the default when every sample is a text's last token), target (with --prompts), pair-kl (negation) or probe (a label probe on the last residual)."),
    prompts_file: Path | None = option("--prompts", more="Here: with --from-tune, the metric target."),
    target: str | None = option("--target", more="Here: with --from-tune --prompts, e.g. ' seven, eight'."),
    corpus: str = CorpusOpt,
    text_field: str = TextFieldOpt,
    max_tokens: int = SampledTokensOpt,
    context: int = ContextOpt,
    batch_size: int = BatchOpt,
    skip_first: bool = SkipFirstOpt,
    out: Path | None = OutOpt,
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    as_json: bool = JsonOpt,
):
    """Ablate neurons or heads at one site and measure loss, perplexity and KL (or test a tune run causally)."""
    from lamina.analyses.causal.interventions import METHODS, Ablate, reference_from_store, reference_stats
    from lamina.analyses.causal.metrics import edit_metrics

    def load_model():
        return load(model, seed, device, dtype)

    if out is not None:
        check_output(out)
    if method not in METHODS:
        raise InputError(f"unknown --method '{method}'; choose one of {', '.join(METHODS)}")
    if from_tune is not None:
        from lamina.cli.from_tune import TuneMetricChoice, from_tune_check

        choice = TuneMetricChoice(tune_metric, prompts_file, target, max_pairs)
        return from_tune_check(from_tune, site, top, random_draws, layers, choice, loss_tokens, random_loss, method,
                               corpus, text_field, out, load_model, seed, as_json)
    if site is None:
        raise InputError("give --site (e.g. mlp_post.13) or --from-tune DIR")
    if store is not None and method != "mean":
        raise InputError("--store gives a mean; use it with --method mean")
    lm = load_model()
    docs = _docs(corpus, text_field)
    pos = parse_positions(positions)
    ref = None
    if method != "zero":
        ref = (reference_from_store(store, lm.sites([site])[0].name) if store is not None else
               reference_stats(lm, site, docs, context, reference_tokens or None, batch_size, skip_first,
                               progress=not as_json))
    edit = Ablate(site, neurons=parse_indices(neurons, "neurons"), heads=parse_indices(heads, "heads"), positions=pos,
                  method=method, reference=ref, seed=seed)
    settings = {"model": lm.spec, "site": site, "neurons": list(edit.neurons) if edit.neurons else "all",
                "heads": list(edit.heads) if edit.heads else None, "positions": positions, "method": method,
                "corpus": corpus, "context": context, "skip_first": skip_first,
                "reference": str(store) if store else (f"{ref.n_tokens} tokens of {corpus}" if ref else None)}
    result = edit_metrics(lm, [edit], docs, context, max_tokens or None, batch_size, skip_first, seed,
                          progress=not as_json, settings=settings)
    if out is not None:
        with atomic_output(out) as tmp:
            result.per_doc.to_csv(tmp / "per_doc.csv", index=False)
            write_json(tmp / "result.json", result.to_json())
    if as_json:
        print(dump(result.to_json()))
        return
    j = result.to_json()
    t = Table(title=Text(f"{lm.spec}: {method}-ablating {site} neurons {settings['neurons']} at {positions} positions"))
    for c in ("", "loss", "perplexity"):
        t.add_column(c, justify="right")
    t.add_row("clean", f"{j['baseline']['loss']:.4f}", f"{j['baseline']['perplexity']:.2f}")
    t.add_row("ablated", f"{j['ablated']['loss']:.4f}", f"{j['ablated']['perplexity']:.2f}")
    console.print(t)
    d, k = j["delta_loss"], j["kl"]
    console.print(Text(f"delta loss {d['value']:+.5f} [{d['low']:+.5f}, {d['high']:+.5f}]; KL(clean||ablated) "
                       f"{k['value']:.3g} [{k['low']:.3g}, {k['high']:.3g}] over {j['n_tokens']} tokens, "
                       f"{j['n_docs']} documents ({j['interval']})"))




@app.command("steer")
@user_errors
def steer_command(
    site: str | None = option("--site", more="Here: with --vector, the site it is added at, e.g. resid_post.6."),
    vector: Path | None = typer.Option(None, "--vector", callback=path_check("input_file"), help="A .npy direction."),
    from_tune: Path | None = option("--from-tune", more="Steer along its difference of means at --layer."),
    layer: int | None = typer.Option(None, "--layer", min=0, max=4095, help="--from-tune: the layer whose direction is used."),
    neuron: str | None = typer.Option(None, "--neuron", help="A neuron's output vector, e.g. mlp_post.12:345."),
    multipliers: str = typer.Option("0,1,2,4", "--multipliers", help=MULTIPLIERS_HELP),
    target: str = option("--target", " not", more="Here: one token for the sweep; several with --from-tune --top."),
    prompts: list[str] | None = typer.Option(None, "--prompt", help="Prompts (default: the negation pairs' shared beginnings)."),
    generate_tokens: int = typer.Option(0, "--generate", min=0, max=4096,
                                        help="Also print a greedy continuation of the first prompt per multiplier."),
    top: int | None = option("--top", more="Here: steered at the largest |multiplier|."),
    random_draws: int = typer.Option(20, "--random", min=1, max=10**4, help="--from-tune --top: random variance-matched draws."),
    prompts_file: Path | None = option("--prompts", more="Here: with --from-tune --top (else --prompt)."),
    corpus: str = CorpusOpt,
    text_field: str = TextFieldOpt,
    max_tokens: int = option("--max-tokens", SAMPLED_TOKENS, more="Here: corpus tokens for the perplexity cost."),
    out: Path | None = OutOpt,
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    as_json: bool = JsonOpt,
):
    """Add m x (a typical norm) x the unit direction at a site: target effect against perplexity cost, per multiplier m."""
    import numpy as np

    from lamina.analyses.causal import steering

    if out is not None:
        check_output(out)
    sources = [x is not None for x in (vector, from_tune, neuron)]
    if sum(sources) != 1:
        raise InputError("give exactly one direction: --vector FILE.npy (with --site), --from-tune DIR --layer L, or --neuron")
    try:
        sweep = [float(a) for a in multipliers.split(",")]
    except ValueError:
        raise InputError(f"--multipliers '{multipliers}': write numbers separated by commas, e.g. 0,1,2,4") from None
    if not all(np.isfinite(sweep)):
        raise InputError(f"--multipliers '{multipliers}': every multiplier must be a finite number")
    if top is not None:
        if from_tune is None or layer is None:
            raise InputError("--top tests a tune run's neurons: give --from-tune DIR --layer L")
        from lamina.analyses.causal.from_tune import steer_edits
        from lamina.cli.from_tune import TuneMetricChoice, from_tune_check

        strongest = max(sweep, key=abs)
        if strongest == 0:
            raise InputError("--multipliers: give a nonzero multiplier for --top, e.g. --multipliers 4")
        named = prompts_file is not None or bool(prompts)
        choice = TuneMetricChoice("target" if named else None, prompts_file, target if named else None,
                                  prompt_list=tuple(prompts or ()))
        return from_tune_check(from_tune, None, top, random_draws, str(layer), choice, max_tokens, False, "steer",
                               corpus, text_field, out, lambda: load(model, seed, device, dtype), seed, as_json,
                               edits_for=steer_edits(strongest))
    lm = load(model, seed, device, dtype)
    if vector is not None:
        if site is None:
            raise InputError("--vector needs --site (where the vector is added)")
        try:
            direction = np.load(vector)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read --vector {vector}: {err}") from None
        where = site
    elif from_tune is not None:
        if layer is None:
            raise InputError("--from-tune needs --layer")
        where, direction = steering.tune_direction(from_tune, layer)
    else:
        where, direction = steering.neuron_direction(lm, neuron)
    texts = list(prompts) if prompts else steering.negation_prompts(lm.tokenizer)
    table, info = steering.steer_sweep(lm, where, direction, sweep, target, texts, _docs(corpus, text_field),
                                       max_tokens or None, seed, progress=not as_json)
    continuations = {}
    if generate_tokens:
        from lamina.analyses.causal.interventions import Steer

        unit, scale = steering.unit_scale(lm, where, direction, texts)
        continuations = {a: steering.generate(lm, texts[0], [Steer(where, unit * scale, a)], generate_tokens) for a in sweep}
    result = {**info, "sweep": table.to_dict(orient="records"),
              "continuations": {str(a): c for a, c in continuations.items()}, "prompt": texts[0]}
    if out is not None:
        from lamina.report.causal_report import steer_plot

        with atomic_output(out) as tmp:
            table.to_csv(tmp / "steer_sweep.csv", index=False)
            write_json(tmp / "result.json", result)
            steer_plot(table, info, tmp / "steer_sweep.png")
    if as_json:
        print(dump(result))
        return
    t = Table(title=Text(f"{lm.spec}: steering at {where} (multiplier x {info['scale']:.3g}), target {target!r}, "
                         f"{info['n_prompts']} prompts"))
    for c in ("multiplier", "log p(target)", "change [95%]", "loss", "perplexity", "KL"):
        t.add_column(c, justify="right")
    for r in table.itertuples():
        t.add_row(f"{r.alpha:g}", f"{r.target_logprob:.3f}", f"{r.delta_target:+.3f} [{r.delta_target_low:+.3f}, "
                  f"{r.delta_target_high:+.3f}]", f"{r.loss:.4f}", f"{r.perplexity:.2f}", f"{r.kl:.3g}")
    console.print(t)
    for a, c in continuations.items():
        console.print(Text(f"multiplier {a:g}: {texts[0]}|{c}"))
