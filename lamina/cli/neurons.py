"""Single neurons (or directions) and their pages: `lamina maximize` and `lamina top-examples`."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lamina.analyses.neurons.maximize_settings import MaximizeSettings
from lamina.cli.checks import non_negative_number, path_check, positive_number
from lamina.cli.common import (
    COUNT_MAX,
    BatchOpt,
    ContextOpt,
    CorpusOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    MaxDocsOpt,
    MaxTokOpt,
    ModelOpt,
    SeedOpt,
    TextFieldOpt,
    app,
    check_count,
    console,
    dump,
    load,
    option,
    user_errors,
)

MAXIMIZE = MaximizeSettings()  # the defaults of maximize's options
NeuronsOut = option("--out", Path("lamina-out/neurons"), more="Here: JSON and neuron pages (maximize and top-examples share it).")


def _read_direction(path: Path):
    """A direction vector from .npy, .pt or a text file of numbers."""
    import numpy as np

    from lamina.errors import InputError

    try:
        if path.suffix == ".npy":
            return np.load(path)
        if path.suffix == ".pt":
            import torch

            return torch.load(path, map_location="cpu").detach().numpy()
        return np.loadtxt(path)
    except (OSError, ValueError, AttributeError) as err:
        raise InputError(f"cannot read --direction {path}: {err}") from None


@app.command("maximize")
@user_errors
def maximize_command(
    neuron: str | None = typer.Option(None, "--neuron", "-n", help="Neuron SITE:INDEX, e.g. mlp_post.15:123."),
    site: str | None = option("--site", more="Here: with --direction, the site it lives in, e.g. resid_post.5."),
    direction: Path | None = typer.Option(None, "--direction", callback=path_check("input_file"),
        help="A vector as .npy, .pt or text, the site's width."),
    position: str = typer.Option(MAXIMIZE.position, "--position",
        help="last: the last token; mean: mean over the optimised tokens."),
    n_tokens: int = typer.Option(MAXIMIZE.n_tokens, "--n-tokens", min=1, max=4096, help="Soft tokens to optimise."),
    steps: int = typer.Option(MAXIMIZE.steps, "--steps", min=1, max=10**6, help="Adam steps."),
    lr: float = typer.Option(MAXIMIZE.lr, "--lr", callback=positive_number, help="Adam learning rate, in units of the embedding's per-coordinate std."),
    norm_penalty: float = typer.Option(MAXIMIZE.norm_penalty, "--norm-penalty", callback=non_negative_number,
        help="Weight of mean ((|v| - r) / r)^2, r the mean embedding norm."),
    seeds: int = typer.Option(len(MAXIMIZE.seeds), "--seeds", min=1, max=10**4, help="Runs from different random initial tokens (seeds 0..N-1)."),
    projected: bool = typer.Option(False, "--projected",
        help="Forward on the nearest tokens; gradient straight through."),
    top_k: int = typer.Option(MAXIMIZE.top_k, "--top-k", min=1, max=COUNT_MAX, help="Nearest tokens listed per optimised vector."),
    fluency: str | None = typer.Option(None, "--fluency",
        help="Lambdas for the discrete search with a fluency penalty, e.g. 0,1,4."),
    search_steps: int = typer.Option(MAXIMIZE.search_steps, "--search-steps", min=0, max=10**6, help="Steps of the discrete search per lambda."),
    search_top_k: int = typer.Option(MAXIMIZE.search_top_k, "--search-top-k", min=1, max=COUNT_MAX, help="Candidate tokens per position, by gradient."),
    search_batch: int = typer.Option(MAXIMIZE.search_batch, "--search-batch", min=1, max=2**16, help="Candidate prompts evaluated per step."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    out: Path = NeuronsOut,
    as_json: bool = JsonOpt,
):
    """Activation maximization by gradient ascent on soft input embeddings, decoded and re-scored on real tokens."""
    from lamina.analyses.neurons.maximize import maximize
    from lamina.errors import InputError
    from lamina.report.neuron_page import slug, write_neuron_pages
    from lamina.report.output import atomic_output, check_output

    check_output(out)
    try:
        lambdas = [float(x) for x in fluency.split(",") if x.strip()] if fluency else []
    except ValueError:
        raise InputError(f"--fluency takes comma-separated numbers, e.g. 0,1,4; got {fluency!r}") from None
    vector = _read_direction(direction) if direction is not None else None
    lm = load(model, seed, device, dtype)
    check_count("--top-k", top_k, lm.vocab_size, "the vocabulary")
    check_count("--search-top-k", search_top_k, lm.vocab_size, "the vocabulary")
    settings = MaximizeSettings(position=position, n_tokens=n_tokens, steps=steps, lr=lr, norm_penalty=norm_penalty,
                                seeds=seeds, projected=projected, top_k=top_k, fluency_lambdas=tuple(lambdas),
                                search_steps=search_steps, search_top_k=search_top_k, search_batch=search_batch)
    result = maximize(lm, neuron, settings, site=site, direction=vector, progress=not as_json)
    data = result.to_dict()
    path = out / f"maximize_{slug(result.target)}.json"
    with atomic_output(out, keep=True) as tmp:  # the folder is shared with top-examples and other neurons
        (tmp / path.name).write_text(dump(data))
        pages = write_neuron_pages(tmp)
    if as_json:
        print(dump(data))
        return
    table = Table(title=f"{lm.spec} {result.target}: gradient ascent, {n_tokens} soft tokens, {steps} steps")
    for col in ("seed", "decoded prompt", "optimised", "re-scored", "prompt CE"):
        table.add_column(col, justify="right")
    for r in result.runs:
        table.add_row(str(r["seed"]), repr(r["text"]), f"{r['optimized_activation']:.4g}",
                      f"{r['rescored_activation']:.4g}", f"{r['rescored_prompt_ce']:.3g}")
    console.print(table)
    rep = result.reproducibility
    if rep["n_seeds"] > 1:
        console.print(f"over {rep['n_seeds']} seeds: {rep['unique_tokens']} unique decoded tokens, mean Jaccard "
                      f"{rep['mean_jaccard']:.3f}, mean cosine {rep['mean_cosine']:.3f} (the seeds' initial random "
                      f"tokens: Jaccard {rep['initial_mean_jaccard']:.3f}, cosine {rep['initial_mean_cosine']:.3f}); "
                      "re-scored activation "
                      f"{rep['activation_mean']:.4g} +- {rep['activation_std']:.3g} "
                      f"(min {rep['activation_min']:.4g}, max {rep['activation_max']:.4g})")
    if rep["decoded_is_init"] > 0.5:
        console.print(f"[yellow]{rep['decoded_is_init']:.0%} of the decoded tokens are the tokens the vectors "
                      "started from[/]: the ascent left the token manifold without reaching another token; "
                      "trust the re-scored numbers, or try --projected or --fluency")
    for p in result.fluency:
        console.print(f"fluency lambda {p['lambda']:g}: {p['text']!r} activation {p['activation']:.4g}, "
                      f"CE {p['prompt_ce']:.3g}{' (frontier)' if p['frontier'] else ''}")
    console.print(f"wrote {path}" + (f" and {len(pages)} neuron page(s)" if pages else ""))


@app.command("top-examples")
@user_errors
def top_examples_command(
    neuron: list[str] = typer.Option(..., "--neuron", "-n", help="Neuron SITE:INDEX (repeatable)."),
    k: int = option("-k", 10, more="Here: top examples per neuron, one per document."),
    n_random: int = typer.Option(10, "--random", min=0, max=COUNT_MAX, help="Random tokens shown per neuron."),
    quantiles: int = typer.Option(10, "--quantiles", min=0, max=1000, help="Quantile bins of the activation distribution."),
    per_quantile: int = typer.Option(2, "--per-quantile", min=0, max=1000, help="Examples shown per quantile bin."),
    compare: list[Path] | None = typer.Option(None, "--compare", callback=path_check("input_path"),
        help="maximize_*.json files or folders to compare with."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    corpus: str = CorpusOpt,
    text_field: str = TextFieldOpt,
    context: int = ContextOpt,
    batch_size: int = BatchOpt,
    max_tokens: int | None = MaxTokOpt,
    max_docs: int | None = MaxDocsOpt,
    store: Path | None = option("--store", more="Read it instead of running the model; its model, corpus and "
                                                   "context are used."),
    out: Path = NeuronsOut,
    as_json: bool = JsonOpt,
):
    """Data sampling: each neuron's top corpus examples, random and per-quantile samples, and an HTML page."""
    from lamina.analyses.neurons.top_examples import top_examples, top_examples_from
    from lamina.report.neuron_page import write_neuron_pages
    from lamina.report.output import atomic_output, check_output

    check_output(out)
    options = dict(k=k, batch_size=batch_size, max_tokens=max_tokens, n_random=n_random, n_quantiles=quantiles,
                   per_quantile=per_quantile, progress=not as_json)
    if store is not None:
        from lamina.analyses.sources.store import StoreSource
        from lamina.models.registry import load_tokenizer
        from lamina.store import ActivationStore

        stored = ActivationStore(store)
        result = top_examples_from(StoreSource(stored, load_tokenizer(stored.manifest["settings"]["model"]),
                                               max_tokens), neuron, **options)
    else:
        from lamina.data.corpus import load_corpus

        docs = load_corpus(corpus, text_field, max_docs)
        lm = load(model, seed, device, dtype)
        result = top_examples(lm, neuron, docs, context=context, **options)
    from lamina.cli.common import err_console

    for note in result.settings["notes"]:  # fewer examples than asked: how many, and why (also in the JSON)
        err_console.print(note, highlight=False, soft_wrap=True)
    with atomic_output(out, keep=True) as tmp:  # the folder is shared with maximize
        (tmp / "top_examples.json").write_text(dump(result.to_dict()))
        pages = write_neuron_pages(tmp, compare or ())
    if as_json:
        print(dump(result.to_dict()))
        return
    for name, n in result.neurons.items():
        table = Table(title=f"{result.model} {name}: {n['n_tokens']} tokens, max {n['max']:.4g}, mean {n['mean']:.3g}")
        for col in ("activation", "token", "document", "context"):
            table.add_column(col, justify="right" if col == "activation" else "left")
        for e in n["top"]:
            before = "".join(e["tokens"][max(0, e["focus"] - 12):e["focus"]])
            table.add_row(f"{e['value']:.4g}", repr(e["token"]), e["doc"], repr(before + "[" + e["token"] + "]"))
        console.print(table)
        tally = ", ".join(f"{t['token']!r} x{t['batches']}" for t in n["argmax_tally"][:10])
        console.print(f"argmax token per batch: {tally}")
    console.print(f"wrote {out / 'top_examples.json'} and {len(pages)} neuron page(s) to {out}")
