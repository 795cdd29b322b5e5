"""`ablate --from-tune` and `steer --from-tune --top`: a tune run's top-K neurons against random ones (docs/CAUSAL.md).

The analysis is `analyses/causal/from_tune.py`; its metrics `analyses/causal/tune_metrics.py`; here the choice of
metric from the command line, the files and the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text

from lamina.cli.common import check_count, console, dump
from lamina.data.corpus import load_corpus
from lamina.errors import InputError


@dataclass
class TuneMetricChoice:
    """What `--from-tune` measures, as given on the command line (checked in `_tune_metric`)."""

    name: str | None
    prompts: Path | None
    target: str | None
    max_pairs: int | None = None
    prompt_list: tuple = ()    # steer's --prompt texts, when no --prompts file is given


def _tune_metric(lm, folder, settings: dict, choice: TuneMetricChoice):
    """The metric of a from-tune check: loss at the run's labelled positions, target log-prob, or pair KL."""
    from lamina.analyses.causal import tune_metrics
    from lamina.analyses.tuning.contrasts import read_lines, read_pairs
    from lamina.analyses.tuning.run_folder import read_tune_samples

    name = choice.name or ("target" if choice.prompts is not None else "loss")
    if name not in ("loss", "kl", "target", "pair-kl", "probe"):
        raise InputError(f"unknown --metric '{name}'; choose loss, kl, target, pair-kl or probe")
    if name == "target" or choice.prompts is not None:
        if (choice.prompts is None and not choice.prompt_list) or not choice.target:
            raise InputError("--metric target needs --prompts FILE and --target TOKENS (e.g. --target ' seven')")
        ids = tune_metrics.target_ids(lm.tokenizer, choice.target)
        labels = [lm.tokenizer.decode([i]) for i in ids]
        prompts = read_lines(choice.prompts, "prompts") if choice.prompts is not None else list(choice.prompt_list)
        return tune_metrics.TargetLogprob(prompts, ids, labels)
    if name == "pair-kl":
        if settings.get("contrast", "negation") != "negation":
            raise InputError(f"--metric pair-kl measures the negation pairs; {folder} tuned "
                             f"'{settings.get('contrast')}': use --metric loss or --prompts FILE --target TOKENS")
        pairs = read_pairs()
        return tune_metrics.PairKL(pairs[:choice.max_pairs] if choice.max_pairs else pairs)
    samples = read_tune_samples(folder)
    unit = "pair" if settings.get("paired") else next(
        (u for u in str(settings.get("unit", "")).split(" x ") if u in samples.rows.columns), "text")
    if name == "probe":
        if settings.get("kind", "binary") != "binary":
            raise InputError(f"--metric probe needs a run with two groups; {folder} tuned a continuous label")
        return tune_metrics.LabelProbe(samples.texts, samples.rows, unit)
    metric = tune_metrics.LabelledLoss(samples.texts, samples.rows, unit, "kl" if name == "kl" else "loss")
    if choice.name is None and not metric.has_next(lm.tokenizer).any():  # every sample read at a text's last token
        metric = tune_metrics.LabelledLoss(samples.texts, samples.rows, unit, "kl")
    return metric


def from_tune_check(folder, site, k, repeats, layers, choice, loss_tokens, random_loss, method, corpus, text_field, out,
                    load_model, seed, as_json, edits_for=None):
    """`load_model()` loads the model the verb was given (with its --device and --dtype)."""
    from lamina.analyses.causal.from_tune import ablate_edits, causal_from_tune
    from lamina.analyses.tuning.run_folder import read_laminar, read_tune_run
    from lamina.sites import parse_layers

    table, settings = read_tune_run(folder)
    tune_site = settings.get("site", "mlp_post")
    if site is not None and site != tune_site:
        raise InputError(f"{folder} tuned {tune_site} neurons; leave --site out or give --site {tune_site}")
    lm = load_model()
    if settings.get("model") and settings["model"] != lm.spec:
        raise InputError(f"{folder} was tuned on {settings['model']}; pass --model {settings['model']}")
    check_count("--top", k, lm.site_widths([f"{tune_site}.0"])[f"{tune_site}.0"], f"the width of {tune_site}")
    chosen = parse_layers(layers, lm.n_layers) if layers else None
    if chosen:
        missing = sorted(set(chosen) - set(int(L) for L in table.layer))
        if missing:
            raise InputError(f"the tune run has no layer {missing[0]}; it covers {sorted(set(table.layer))}")
    metric = _tune_metric(lm, folder, settings, choice)
    docs = load_corpus(corpus, text_field) if loss_tokens else None
    if edits_for is None:
        reference = None
        if method == "mean":
            from lamina.analyses.causal.interventions import reference_stats

            def reference(name):
                return reference_stats(lm, name, docs or load_corpus(corpus, text_field), max_tokens=loss_tokens * 4)
        edits_for = ablate_edits(method, reference)
    result = causal_from_tune(lm, table, metric, edits_for, tune_site, chosen, k, repeats, docs, loss_tokens, seed,
                              random_loss=random_loss, progress=not as_json)
    result.settings["tune_run"] = {"folder": str(folder), "contrast": settings.get("contrast")}
    if out is not None:
        from lamina.report.causal_report import causal_laminar
        from lamina.report.jsonio import write_json
        from lamina.report.output import atomic_output

        lam = read_laminar(folder)
        fractions = (dict(zip(lam.layer.astype(int), lam.fraction_significant))
                     if lam is not None and "fraction_significant" in lam.columns else None)
        with atomic_output(out) as tmp:
            result.per_layer.to_csv(tmp / "causal_laminar.csv", index=False)
            result.draws.to_csv(tmp / "draws.csv", index=False)
            write_json(tmp / "result.json", result.to_json())
            causal_laminar(result, fractions, tmp / "causal_laminar.png")
    if as_json:
        print(dump(result.to_json()))
        return
    t = Table(title=Text(f"{lm.spec}: {result.settings['edit']} the top {k} tuned {tune_site} neurons of "
                         f"{settings.get('contrast', 'the tune run')} vs {repeats} random draws"))
    for c in ("layer", "significant in top", "top effect [95%]", "random 95% band", "p", "loss top", "loss random"):
        t.add_column(c, justify="right")
    for r in result.per_layer.itertuples():
        t.add_row(str(r.layer), f"{r.n_top_significant}/{r.n_top}", f"{r.top_effect:+.4f} [{r.top_low:+.4f}, {r.top_high:+.4f}]",
                  f"{r.random_low:+.4f} .. {r.random_high:+.4f}", f"{r.p_value:.3f}", _signed(r.top_delta_loss),
                  _signed(r.random_delta_loss))
    console.print(t)
    console.print(Text(f"metric: {result.settings['metric']}; {result.settings['interval']}", style="dim"))
    for line in result.verdicts():
        console.print(Text(line))


def _signed(value: float) -> str:
    """+0.1234, or '-' for a figure not measured (NaN)."""
    return "-" if value != value else f"{value:+.4f}"
