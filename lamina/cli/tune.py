"""`lamina tune`: neuron tuning to a contrast (or the context lesson), and the table it prints."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from lamina.analyses.tuning.settings import PROBE_RANKINGS, TuneSettings
from lamina.cli.checks import path_check, unit_interval
from lamina.cli.common import (
    SAMPLED_TOKENS,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    MaxDocsOpt,
    app,
    console,
    dump,
    load,
    option,
    user_errors,
)
from lamina.models.registry import DEFAULT_MODEL

TUNE = TuneSettings()  # the defaults of the options below
IN_FILE = path_check("input_file")


@app.command()
@user_errors
def tune(
    contrast: str = typer.Option(..., "--contrast", help="nouns-verbs, negation, proper-nouns, token-length, category, labels, or context (the context lesson)."),
    site: str = option("--site", TUNE.site, more="Here: the kind tuned (mlp_post, mlp_pre, q, k, v, resid_post, ...)."),
    layers: str = option("--layers", "all"),
    out: Path | None = option("--out", more="Here: tables, tuning.png and tuning.html."),
    words_a: Path | None = typer.Option(None, "--words-a", callback=IN_FILE, help="category: word list of group A (one word a line)."),
    words_b: Path | None = typer.Option(None, "--words-b", callback=IN_FILE, help="category: word list of group B."),
    words_c: Path | None = typer.Option(None, "--words-c", callback=IN_FILE, help="category: a second category scored against the same group B (specificity: the overlap of the two significant sets)."),
    sentences_a: Path | None = typer.Option(None, "--sentences-a", callback=IN_FILE, help="category: sentences of group A (one a line)."),
    sentences_b: Path | None = typer.Option(None, "--sentences-b", callback=IN_FILE, help="category: sentences of group B."),
    table_file: Path | None = typer.Option(None, "--table", callback=IN_FILE, help="labels: a CSV/TSV/Parquet/JSONL table with a text column."),
    label_column: str | None = typer.Option(None, "--label-column", help="labels: the label column (COLUMN or COLUMN=VALUE)."),
    word_pooling: str = typer.Option("last", "--word-pooling", help="Read a multi-token word at its last, first or mean sub-token."),
    negation_token: str = typer.Option("after-edit", "--negation-token", help="negation: read at the first token after the edit, or the final token."),
    permutations: int = typer.Option(TUNE.permutations, "--permutations", min=0, max=10**6, help="Label permutations for the null of the count of significant neurons."),
    fdr_family: str = typer.Option(TUNE.fdr_family, "--fdr-family", help="Multiple-testing family: each layer, or the whole model."),
    alpha: float = typer.Option(TUNE.alpha, "--alpha", callback=unit_interval, help="FDR level (and Bonferroni family-wise level)."),
    cv: int = typer.Option(TUNE.cv, "--cv", min=2, max=1000, help="Cross-validation folds for logistic regression and probes."),
    rank_by: list[str] | None = typer.Option(None, "--rank-by", help=f"Sparse-probe rankings (repeatable): {', '.join(PROBE_RANKINGS)}. Default all of them."),
    no_probes: bool = typer.Option(False, "--no-probes", help="Skip the sparse probes."),
    max_tokens: int = option("--max-tokens", SAMPLED_TOKENS, more="Here: corpus contrasts' paragraphs, drawn at random over the corpus."),
    max_docs: int = MaxDocsOpt,
    max_per_group: int | None = typer.Option(500, "--max-per-group", min=0, help="At most this many samples (pairs) per group, drawn at random (0: all)."),
    batch_size: int = option("--batch-size", TUNE.batch_size, more="Here: texts of 128 tokens (shorter texts: as many as fit in the same tokens)."),
    unit: str = typer.Option("default", "--unit", help="Unit of replication of the primary test: default (word type x paragraph for corpus contrasts, the pair for negation) or occurrence (every sample independent: the old, anti-conservative test)."),
    unit_column: list[str] | None = typer.Option(None, "--unit-column", help="A sample/table column that names the unit of replication (repeat once for two-way clustering), e.g. --unit-column speaker."),
    control: list[str] | None = typer.Option(None, "--control", help="A sample/table column entered as fixed effects (repeatable): a design factor crossed with the units, e.g. --control template."),
    p_method: str = typer.Option(TUNE.p, "--p", help="The primary p: analytic (the test's own) or permutation (labels permuted among units, signs flipped for pairs; enough draws for the BH level)."),
    keep_first_token: bool = typer.Option(False, "--keep-first-token", help="resid sites: keep samples read at position 0 (the attention sink; left out by default)."),
    controls: bool = typer.Option(False, "--controls", help="Negative controls beside the result: the same contrast on a random-weights model of the same shape, and for negation the neutral-word insertion."),
    reference_permutations: int = typer.Option(TUNE.reference_permutations, "--reference-permutations", min=0, max=10**6, help="Null labellings for the reference of the best CV accuracy / probe AUC (0: none)."),
    store: Path | None = option("--store", more="Read the samples' activations from a store of the contrast's texts (see --texts-out) instead of running the model; corpus contrasts and category."),
    texts_out: Path | None = typer.Option(None, "--texts-out", callback=path_check("output_file"), help="Write the contrast's texts as a JSONL corpus (one document per text) and stop: extract a store from it for --store."),
    model: str | None = option("--model", None, more=f"Default {DEFAULT_MODEL}; with --store: the store's model."),
    seed: int | None = option("--seed", None, more="Default 0; with --store: the store's."),
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    as_json: bool = JsonOpt,
):
    """Neuron tuning to a contrast, layer by layer: tests, FDR, permutation null, probes, laminar profile."""
    from lamina.analyses.tuning.contrasts import CONTRASTS, build_contrast
    from lamina.errors import InputError

    if contrast not in CONTRASTS + ("context",):
        raise InputError(f"unknown contrast '{contrast}'; choose one of {', '.join(CONTRASTS + ('context',))}")
    from lamina.report.output import atomic_output, check_output

    if out is not None:
        check_output(out)
    if store is not None or texts_out is not None:
        _check_store_contrast(contrast, store, controls)
    if store is not None:
        lm = _open_store(store, model, seed)       # a samples source over the store: no weights loaded
    elif texts_out is None:
        lm = load(model or DEFAULT_MODEL, seed or 0, device, dtype)
    else:                                          # writing the texts needs the tokenizer only
        from lamina.models.registry import load_tokenizer

        lm = None
    tokenizer = lm.tokenizer if lm is not None else load_tokenizer(model or DEFAULT_MODEL)
    if seed is None:  # the model's seed (a store's: the one it was extracted with) also seeds the draws
        seed = getattr(lm, "seed", None) or 0
    if contrast == "context":
        from lamina.analyses.tuning.context_lessons import context_effect

        result = context_effect(lm, site=site, layers=layers, batch_size=batch_size)
        paths = {}
        if out is not None:
            from lamina.report.tuning_report import write_context

            with atomic_output(out) as tmp:
                paths = write_context(result, tmp)
        if as_json:
            print(dump(result.to_json()))
            return
        wide = result.per_layer.pivot(index="layer", columns="comparison", values="mean_r")
        from rich.text import Text

        t = Table(title=Text(f"{lm.spec}: {site}, mean r between activation vectors ({result.settings['n_words']} words)"))
        t.add_column("layer", justify="right")
        for c in wide.columns:
            t.add_column(c, justify="right")
        for L, row in wide.iterrows():
            t.add_row(str(L), *[f"{v:.3f}" for v in row])
        console.print(t)
        if paths:
            console.print(f"wrote {', '.join(p.name for p in paths.values())} to {out}")
        return
    from lamina.analyses.tuning.run import tune as run_tune

    if unit not in ("default", "occurrence"):
        raise InputError(f"--unit '{unit}': choose default or occurrence (name unit columns with --unit-column)")
    if unit_column and unit == "occurrence":
        raise InputError("give --unit occurrence or --unit-column, not both")
    if words_c is not None and (contrast != "category" or words_b is None):
        raise InputError("--words-c is a second category scored against --words-b: use it with --contrast category "
                         "--words-a A --words-b B")
    if words_c is not None and (store is not None or texts_out is not None):
        raise InputError("--words-c tunes a second category on the model; run it without --store / --texts-out")
    samples = build_contrast(
        contrast, tokenizer, words_a=words_a, words_b=words_b, sentences_a=sentences_a, sentences_b=sentences_b,
        table=table_file, label_column=label_column, word_pooling=word_pooling, read=negation_token,
        max_tokens=max_tokens or None, max_docs=max_docs or None, max_per_group=max_per_group or None, seed=seed,
        unit_columns=tuple(unit_column or ()), control_columns=tuple(control or ()))
    if texts_out is not None:
        _write_texts(samples, texts_out, model or DEFAULT_MODEL)
        return
    settings = TuneSettings(site=site, layers=layers, permutations=permutations, fdr_family=fdr_family, alpha=alpha,
                            cv=cv, rank_by=tuple(rank_by) if rank_by else TUNE.rank_by, probes=not no_probes,
                            batch_size=batch_size, seed=seed, unit=tuple(unit_column) if unit_column else unit,
                            keep_first_token=keep_first_token, reference_permutations=reference_permutations,
                            control=tuple(control or ()), p=p_method)
    result = run_tune(lm, samples, settings, progress=not as_json)
    if words_c is not None:  # specificity: C vs the same controls B, its significant set against A's
        _add_specificity(lm, tokenizer, result, settings, words_c, words_b, word_pooling, max_per_group, seed, as_json)
    if controls:
        from lamina.analyses.tuning.controls import run_controls

        run_controls(lm, samples, result, settings, progress=not as_json)
    paths = {}
    if out is not None:
        from lamina.report.tuning_report import write_tuning

        with atomic_output(out) as tmp:
            paths = write_tuning(result, tmp)
    if as_json:
        print(dump(result.to_json()))
        return
    _print_tune(result, out, paths)


def _add_specificity(lm, tokenizer, result, settings, words_c, words_b, word_pooling, max_per_group, seed, quiet):
    """Tune C vs B with the same settings (no probes, no reference labellings) and put the overlap in settings."""
    import dataclasses

    from lamina.analyses.tuning.compare import category_specificity
    from lamina.analyses.tuning.contrasts.word_lists import second_category
    from lamina.analyses.tuning.run import tune as run_tune

    samples_c = second_category(tokenizer, words_c, words_b, word_pooling=word_pooling,
                                max_per_group=max_per_group or None, seed=seed)
    quick = dataclasses.replace(settings, probes=False, reference_permutations=0)
    result.settings["specificity"] = category_specificity(result, run_tune(lm, samples_c, quick, progress=not quiet))


def _check_store_contrast(contrast: str, store, controls: bool) -> None:
    """--store / --texts-out apply to contrasts whose samples are tokens of texts read alone."""
    from lamina.errors import InputError

    flag = "--store" if store is not None else "--texts-out"
    if contrast in ("negation", "context"):
        what = "pairs" if contrast == "negation" else "words"
        raise InputError(f"{flag} does not apply to {contrast}: its {what} are not read from a store; run it "
                         f"without {flag}")
    if controls and store is not None:
        raise InputError("--controls runs a random-weights model of the same shape; run them without --store")


def _open_store(folder: Path, model: str | None, seed: int | None):
    """The store as a samples source, refused when --model / --seed name another model than it was made with."""
    from lamina.analyses.sources.store import StoreSource
    from lamina.errors import InputError
    from lamina.store import ActivationStore

    stored = ActivationStore(folder)
    s = stored.manifest["settings"]
    if model is not None and model.strip() != s["model"]:
        raise InputError(f"{folder} holds activations of {s['model']}, not of --model {model}; drop --model or "
                         "give a store of that model")
    if seed is not None and s["model"].startswith("random:") and seed != s.get("seed"):
        raise InputError(f"{folder} holds activations of {s['model']} with seed {s.get('seed')}, not --seed {seed}")
    return StoreSource(stored)


def _write_texts(samples, path: Path, spec: str) -> None:
    """The contrast's texts as a JSONL corpus (`lamina extract --corpus`), one document per text."""
    from lamina.errors import InputError

    lines = "".join(json.dumps({"id": f"{samples.contrast}-{i}", "text": t}) + "\n" for i, t in enumerate(samples.texts))
    try:
        path.write_text(lines, encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot write --texts-out {path}: {err.strerror or err}") from None
    console.print(f"wrote {len(samples.texts)} texts of {samples.contrast} to {path}; extract them with\n  lamina "
                  f"extract --corpus {path} --model {spec} --sites SITES --context {samples.max_length} --max-tokens 0 "
                  f"--store-dtype float32 --out STORE\nthen run the same tune command with --store STORE", highlight=False,
                  soft_wrap=True)


def _print_tune(result, out: Path | None, paths: dict) -> None:
    s, lam = result.settings, result.laminar
    from rich.text import Text

    t = Table(title=Text(f"{s['contrast']} on {s['model']}: {s['site']} neurons, {json.dumps(s['group_sizes'])}"))
    binary = s["kind"] == "binary"
    cols = ["layer", "significant", "fraction", "null 95%", "best neuron", "t" if binary else "r"]
    if "n_significant_occurrence" in lam:
        cols.insert(2, "occurrence-level")
    cols += ["best CV bal. acc", "probe AUC (k)"] if binary else ["median |r|"]
    for c in cols:
        t.add_column(c, justify="right")
    for r in lam.itertuples():
        n = r.n_neurons
        band = f"{r.null_low * n:.0f}-{r.null_high * n:.0f}" if hasattr(r, "null_high") else "-"
        best = str(r.best_neuron) if r.n_significant else "none significant"  # no "best" neuron without a hit
        cells = [str(r.layer), str(r.n_significant), f"{r.fraction_significant:.1%}", band, best]
        if "n_significant_occurrence" in lam:
            cells.insert(2, str(r.n_significant_occurrence))
        if binary:
            probe = f"{r.probe_best_auc:.3f} ({r.probe_best_k})" if hasattr(r, "probe_best_auc") else "-"
            cells += [f"{r.best_t:.2f}", f"{r.best_cv_balanced_accuracy:.3f}", probe]
        else:
            cells += [f"{r.best_r:.3f}", f"{r.median_abs_r:.3f}"]
        t.add_row(*cells)
    console.print(t)
    console.print(Text(s["statement"]))
    if result.controls is not None:
        console.print(Text("negative controls (significant neurons per layer): " + "; ".join(
            f"layer {r['layer']}: " + ", ".join(f"{k.removeprefix('n_significant_')} {v}" for k, v in r.items()
                                               if k.startswith("n_significant")) for r in result.controls.to_dict("records"))))
    if s.get("null_total"):
        n = s["null_total"]
        console.print(f"significant over all layers: {s['n_significant_total']} (permutation null: mean {n['mean']:.3g}, "
                      f"95% {n['low']:g}-{n['high']:g}, p = {n['p_value']:.3g})", highlight=False)
    if s.get("specificity"):
        sp = s["specificity"]
        console.print(Text(f"{sp['statement']}:\n" + "\n".join(
            f"  layer {r['layer']}: {sp['first']} {r['fraction_a']:.1%}, {sp['second']} {r['fraction_c']:.1%}; both "
            f"{r['overlap']} (expected {r['expected_overlap']:.1f}, p = {r['p_overlap']:.3g}), rho {r['spearman_rho']:.2f}"
            for r in sp["layers"])))
    for note in s["notes"]:
        console.print(Text(f"note: {note}", style="dim"))
    if paths:
        console.print(f"wrote {len(paths)} files to {out} (tuning.html, tuning.png, neurons.csv, laminar.csv, ...)")
