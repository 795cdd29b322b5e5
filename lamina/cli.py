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
console = Console(emoji=False)  # never turn ":llama:" in a model name into an emoji
err_console = Console(stderr=True, emoji=False)

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
    from rich.text import Text

    from lamina.analyses.logit_lens import logit_lens
    from lamina.data.texts import read_texts

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
    k: int = typer.Option(20, "-k", help="Tokens per list."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write project.csv here."),
    as_json: bool = JsonOpt,
):
    """Vocabulary projection of a neuron: the tokens it promotes and suppresses, and the tokens that drive it."""
    from rich.text import Text

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


CorpusOpt = typer.Option("builtin", "--corpus", "-c", help="builtin, a .txt/.jsonl file, a folder, or hf:NAME[:SPLIT].")
TextFieldOpt = typer.Option("text", "--text-field", help="JSONL field holding the text.")
ContextOpt = typer.Option(128, "--context", help="Tokens per window.")
StrideOpt = typer.Option(None, "--stride", help="Tokens between window starts (default: --context, no overlap).")
BatchOpt = typer.Option(8, "--batch-size", help="Windows per forward pass.")
SkipFirstOpt = typer.Option(False, "--skip-first", help="Leave each window's first token out of statistics.")
PackOpt = typer.Option(False, "--pack", help="Join documents into full windows (no padding; windows cross documents).")
MaxTokOpt = typer.Option(None, "--max-tokens", help="Stop after this many tokens.")
MaxDocsOpt = typer.Option(None, "--max-docs", help="Use only the first N documents.")


@app.command()
@user_errors
def profile(
    kind: str = typer.Option("resid_post", "--kind", "-k", help="Site kind: resid_post, mlp_post, q, ..."),
    method: str = typer.Option("hooks", "--method", help="hooks (raw, every layer) or hidden-states."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    corpus: str = CorpusOpt,
    text_field: str = TextFieldOpt,
    context: int = ContextOpt,
    stride: Optional[int] = StrideOpt,
    batch_size: int = BatchOpt,
    skip_first: bool = SkipFirstOpt,
    pack: bool = PackOpt,
    max_tokens: Optional[int] = MaxTokOpt,
    max_docs: Optional[int] = MaxDocsOpt,
    out: Path = typer.Option(Path("lamina-out/profile"), "--out", "-o", help="Folder for tables, plots and HTML."),
    as_json: bool = JsonOpt,
):
    """Laminar profile of a site kind over a corpus: per-layer statistics and massive activations."""
    from lamina.analyses.profile import profile as run_profile
    from lamina.data.corpus import load_corpus
    from lamina.report.profile_report import write_profile

    docs = load_corpus(corpus, text_field, max_docs)
    lm = _load(model, seed)
    result = run_profile(lm, docs, kind, method, context, stride, batch_size, skip_first, pack, max_tokens)
    paths = write_profile(result, out)
    if as_json:
        print(_dump(result.to_json()))
        return
    t = result.table
    table = Table(title=f"laminar profile: {kind} by {method} on {model}")
    for col in ("reading", "mean norm", "std", "kurtosis", "top1 |x|", "median |x|", "massive dims"):
        table.add_column(col, justify="right")
    for _, row in t.iterrows():
        table.add_row(row["reading"], f"{row['mean_token_norm']:.4g}", f"{row['std']:.3g}", f"{row['kurtosis']:.3g}",
                      f"{row['top1_abs']:.4g}", f"{row['median_abs']:.3g}", " ".join(map(str, row["massive_dims"][:6])))
    console.print(table)
    console.print(f"wrote {paths['html']} (and CSV, Parquet, JSON, PNG beside it)")


@app.command()
@user_errors
def extract(
    sites: str = typer.Option(..., "--sites", "-s", help="Comma-separated sites, e.g. resid_post,mlp_post.3"),
    out: Path = typer.Option(..., "--out", "-o", help="Store folder."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    corpus: str = CorpusOpt,
    text_field: str = TextFieldOpt,
    context: int = ContextOpt,
    stride: Optional[int] = StrideOpt,
    batch_size: int = BatchOpt,
    dtype: str = typer.Option("float16", "--dtype", help="Storage dtype: float16, bfloat16 or float32."),
    skip_first: bool = SkipFirstOpt,
    pack: bool = PackOpt,
    max_tokens: Optional[int] = MaxTokOpt,
    max_docs: Optional[int] = MaxDocsOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted store."),
    worker: int = typer.Option(0, "--worker", help="This worker's index (parallel filling)."),
    workers: int = typer.Option(1, "--workers", help="Number of workers filling the store."),
):
    """Capture sites over a corpus into an activation store on disk (resumable, checksummed shards)."""
    from lamina.data.corpus import load_corpus
    from lamina.extract import extract as run_extract

    docs = load_corpus(corpus, text_field, max_docs)
    lm = _load(model, seed)
    try:
        store = run_extract(lm, docs, sites, out, context, stride, batch_size, dtype, resume, skip_first, pack,
                            max_tokens, worker, workers)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: complete shards are kept in {out}; rerun with --resume")
        raise typer.Exit(130) from None
    state = "complete" if store.complete else f"{len(store.shards)} of {store.manifest['n_shards']} shards"
    console.print(f"store {out}: {store.n_rows} tokens x {len(store.sites)} sites, {state}")


store_app = typer.Typer(help="Inspect activation stores.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("check")
@user_errors
def store_check(folder: Path = typer.Argument(..., help="Store folder.")):
    """Verify every shard's size and checksum; exit 1 and name the bad shards if any."""
    from lamina.store import ActivationStore

    store = ActivationStore(folder)
    problems = store.check()
    for problem in problems:
        err_console.print(f"[red]bad:[/] {problem}")
    n = len(store.shards)
    console.print(f"{folder}: {n} of {store.manifest['n_shards']} shards complete, {store.n_rows} tokens, "
                  + ("[green]all checksums ok[/]" if not problems else f"[red]{len(problems)} problem(s)[/]"))
    raise typer.Exit(1 if problems else 0)


@store_app.command("info")
@user_errors
def store_info(folder: Path = typer.Argument(..., help="Store folder.")):
    """Print a store's manifest (settings, shards, sites)."""
    from lamina.store import ActivationStore

    store = ActivationStore(folder)
    print(_dump({**store.manifest, "doc_ids": f"{len(store.manifest['doc_ids'])} documents",
                 "complete_shards": len(store.shards), "n_rows": store.n_rows}))


@app.command()
@user_errors
def report(folder: Path = typer.Argument(Path("lamina-out"), help="Folder holding earlier results.")):
    """One HTML report from the results found in a folder (verify, profile, ...)."""
    from lamina.report.combined import write_report

    path = write_report(folder)
    console.print(f"wrote {path}")


NeuronsOut = typer.Option(Path("lamina-out/neurons"), "--out", "-o",
                          help="Folder for JSON and neuron pages (maximize and top-examples share it).")


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
    neuron: Optional[str] = typer.Option(None, "--neuron", "-n", help="Neuron SITE:INDEX, e.g. mlp_post.15:123."),
    site: Optional[str] = typer.Option(None, "--site",
        help="With --direction: the site it lives in, e.g. resid_post.5."),
    direction: Optional[Path] = typer.Option(None, "--direction",
        help="A vector as .npy, .pt or text, the site's width."),
    position: str = typer.Option("last", "--position",
        help="last: the last token; mean: mean over the optimised tokens."),
    n_tokens: int = typer.Option(5, "--n-tokens", help="Soft tokens to optimise."),
    steps: int = typer.Option(200, "--steps", help="Adam steps."),
    lr: float = typer.Option(0.1, "--lr", help="Adam learning rate, in units of the embedding's per-coordinate std."),
    norm_penalty: float = typer.Option(1.0, "--norm-penalty",
        help="Weight of mean ((|v| - r) / r)^2, r the mean embedding norm."),
    seeds: int = typer.Option(1, "--seeds", help="Runs from different random initial tokens (seeds 0..N-1)."),
    projected: bool = typer.Option(False, "--projected",
        help="Forward on the nearest tokens; gradient straight through."),
    top_k: int = typer.Option(5, "--top-k", help="Nearest tokens listed per optimised vector."),
    fluency: Optional[str] = typer.Option(None, "--fluency",
        help="Lambdas for the discrete search with a fluency penalty, e.g. 0,1,4."),
    search_steps: int = typer.Option(30, "--search-steps", help="Steps of the discrete search per lambda."),
    search_top_k: int = typer.Option(64, "--search-top-k", help="Candidate tokens per position, by gradient."),
    search_batch: int = typer.Option(32, "--search-batch", help="Candidate prompts evaluated per step."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    out: Path = NeuronsOut,
    as_json: bool = JsonOpt,
):
    """Activation maximization by gradient ascent on soft input embeddings, decoded and re-scored on real tokens."""
    from lamina.analyses.maximize import maximize
    from lamina.errors import InputError
    from lamina.report.neuron_page import slug, write_neuron_pages

    try:
        lambdas = [float(x) for x in fluency.split(",") if x.strip()] if fluency else []
    except ValueError:
        raise InputError(f"--fluency takes comma-separated numbers, e.g. 0,1,4; got {fluency!r}") from None
    vector = _read_direction(direction) if direction is not None else None
    lm = _load(model, seed)
    result = maximize(lm, neuron, site=site, direction=vector, position=position, n_tokens=n_tokens, steps=steps,
                      lr=lr, norm_penalty=norm_penalty, seeds=seeds, projected=projected, top_k=top_k,
                      fluency_lambdas=lambdas, search_steps=search_steps, search_top_k=search_top_k,
                      search_batch=search_batch, progress=not as_json)
    data = result.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"maximize_{slug(result.target)}.json"
    path.write_text(_dump(data))
    pages = write_neuron_pages(out)
    if as_json:
        print(_dump(data))
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
                      f"{rep['mean_jaccard']:.3f}, mean cosine {rep['mean_cosine']:.3f}; re-scored activation "
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
    neuron: List[str] = typer.Option(..., "--neuron", "-n", help="Neuron SITE:INDEX (repeatable)."),
    k: int = typer.Option(10, "-k", help="Top examples per neuron, one per document."),
    n_random: int = typer.Option(10, "--random", help="Random tokens shown per neuron."),
    quantiles: int = typer.Option(10, "--quantiles", help="Quantile bins of the activation distribution."),
    per_quantile: int = typer.Option(2, "--per-quantile", help="Examples shown per quantile bin."),
    compare: Optional[List[Path]] = typer.Option(None, "--compare",
        help="maximize_*.json files or folders to compare with."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    corpus: str = CorpusOpt,
    text_field: str = TextFieldOpt,
    context: int = typer.Option(64, "--context", help="Tokens per window."),
    batch_size: int = BatchOpt,
    max_tokens: Optional[int] = MaxTokOpt,
    max_docs: Optional[int] = MaxDocsOpt,
    out: Path = NeuronsOut,
    as_json: bool = JsonOpt,
):
    """Data sampling: each neuron's top corpus examples, random and per-quantile samples, and an HTML page."""
    from lamina.analyses.top_examples import top_examples
    from lamina.data.corpus import load_corpus
    from lamina.report.neuron_page import write_neuron_pages

    docs = load_corpus(corpus, text_field, max_docs)
    lm = _load(model, seed)
    result = top_examples(lm, neuron, docs, k=k, context=context, batch_size=batch_size, max_tokens=max_tokens,
                          n_random=n_random, n_quantiles=quantiles, per_quantile=per_quantile, progress=not as_json)
    out.mkdir(parents=True, exist_ok=True)
    (out / "top_examples.json").write_text(_dump(result.to_dict()))
    pages = write_neuron_pages(out, compare or ())
    if as_json:
        print(_dump(result.to_dict()))
        return
    for name, n in result.neurons.items():
        table = Table(title=f"{lm.spec} {name}: {n['n_tokens']} tokens, max {n['max']:.4g}, mean {n['mean']:.3g}")
        for col in ("activation", "token", "document", "context"):
            table.add_column(col, justify="right" if col == "activation" else "left")
        for e in n["top"]:
            before = "".join(e["tokens"][max(0, e["focus"] - 12):e["focus"]])
            table.add_row(f"{e['value']:.4g}", repr(e["token"]), e["doc"], repr(before + "[" + e["token"] + "]"))
        console.print(table)
        tally = ", ".join(f"{t['token']!r} x{t['batches']}" for t in n["argmax_tally"][:10])
        console.print(f"argmax token per batch: {tally}")
    console.print(f"wrote {out / 'top_examples.json'} and {len(pages)} neuron page(s) to {out}")


@app.command()
@user_errors
def tune(
    contrast: str = typer.Option(..., "--contrast", "-c", help="nouns-verbs, negation, proper-nouns, token-length, category, labels, or context (the context lesson)."),
    site: str = typer.Option("mlp_post", "--site", "-s", help="Site kind: mlp_post, mlp_pre, q, k, v, resid_post, ..."),
    layers: str = typer.Option("all", "--layers", "-l", help="Layers: all, a range 0-29, or a list 3,5,7."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write tables, tuning.png and tuning.html here."),
    words_a: Optional[Path] = typer.Option(None, "--words-a", help="category: word list of group A (one word a line)."),
    words_b: Optional[Path] = typer.Option(None, "--words-b", help="category: word list of group B."),
    sentences_a: Optional[Path] = typer.Option(None, "--sentences-a", help="category: sentences of group A (one a line)."),
    sentences_b: Optional[Path] = typer.Option(None, "--sentences-b", help="category: sentences of group B."),
    table_file: Optional[Path] = typer.Option(None, "--table", help="labels: a CSV/TSV/Parquet/JSONL table with a text column."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="labels: the label column (COLUMN or COLUMN=VALUE)."),
    word_pooling: str = typer.Option("last", "--word-pooling", help="Read a multi-token word at its last, first or mean sub-token."),
    negation_token: str = typer.Option("after-edit", "--negation-token", help="negation: read at the first token after the edit, or the final token."),
    permutations: int = typer.Option(100, "--permutations", help="Label permutations for the null of the count of significant neurons."),
    fdr_family: str = typer.Option("layer", "--fdr-family", help="Multiple-testing family: each layer, or the whole model."),
    alpha: float = typer.Option(0.05, "--alpha", help="FDR level (and Bonferroni family-wise level)."),
    cv: int = typer.Option(5, "--cv", help="Cross-validation folds for logistic regression and probes."),
    rank_by: Optional[List[str]] = typer.Option(None, "--rank-by", help="Sparse-probe rankings (repeatable): mean_diff, anova_f, l1. Default all three."),
    no_probes: bool = typer.Option(False, "--no-probes", help="Skip the sparse probes."),
    max_tokens: Optional[int] = typer.Option(8000, "--max-tokens", help="Corpus contrasts: model tokens of corpus paragraphs read, drawn at random over the corpus (0: all)."),
    max_docs: Optional[int] = typer.Option(None, "--max-docs", help="Corpus contrasts: documents read."),
    max_per_group: Optional[int] = typer.Option(500, "--max-per-group", help="At most this many samples (pairs) per group, drawn at random (0: all)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Texts of 128 tokens per forward pass (shorter texts: as many as fit in the same tokens)."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    as_json: bool = JsonOpt,
):
    """Neuron tuning to a contrast, layer by layer: tests, FDR, permutation null, probes, laminar profile."""
    from lamina.analyses.contrasts import CONTRASTS, build_contrast
    from lamina.errors import InputError

    if contrast not in CONTRASTS + ("context",):
        raise InputError(f"unknown contrast '{contrast}'; choose one of {', '.join(CONTRASTS + ('context',))}")
    lm = _load(model, seed)
    if contrast == "context":
        from lamina.analyses.context_lessons import context_effect

        result = context_effect(lm, site=site, layers=layers, batch_size=batch_size)
        paths = {}
        if out is not None:
            from lamina.report.tuning_report import write_context

            paths = write_context(result, out)
        if as_json:
            print(_dump(result.to_json()))
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
    from lamina.analyses.tuning import tune as run_tune

    samples = build_contrast(
        contrast, lm.tokenizer, words_a=words_a, words_b=words_b, sentences_a=sentences_a, sentences_b=sentences_b,
        table=table_file, label_column=label_column, word_pooling=word_pooling, read=negation_token,
        max_tokens=max_tokens or None, max_docs=max_docs, max_per_group=max_per_group or None, seed=seed)
    result = run_tune(lm, samples, site=site, layers=layers, permutations=permutations, fdr_family=fdr_family,
                      alpha=alpha, cv=cv, rank_by=tuple(rank_by) if rank_by else ("mean_diff", "anova_f", "l1"),
                      probes=not no_probes, batch_size=batch_size, seed=seed, progress=not as_json)
    paths = {}
    if out is not None:
        from lamina.report.tuning_report import write_tuning

        paths = write_tuning(result, out)
    if as_json:
        print(_dump(result.to_json()))
        return
    _print_tune(result, out, paths)


def _print_tune(result, out: Optional[Path], paths: dict) -> None:
    s, lam = result.settings, result.laminar
    from rich.text import Text

    t = Table(title=Text(f"{s['contrast']} on {s['model']}: {s['site']} neurons, {json.dumps(s['group_sizes'])}"))
    binary = s["kind"] == "binary"
    cols = ["layer", "significant", "fraction", "null 95%", "best neuron", "t" if binary else "r"]
    cols += ["best CV bal. acc", "probe AUC (k)"] if binary else ["median |r|"]
    for c in cols:
        t.add_column(c, justify="right")
    for r in lam.itertuples():
        n = r.n_neurons
        band = f"{r.null_low * n:.0f}-{r.null_high * n:.0f}" if hasattr(r, "null_high") else "-"
        cells = [str(r.layer), str(r.n_significant), f"{r.fraction_significant:.1%}", band, str(r.best_neuron)]
        if binary:
            probe = f"{r.probe_best_auc:.3f} ({r.probe_best_k})" if hasattr(r, "probe_best_auc") else "-"
            cells += [f"{r.best_t:.2f}", f"{r.best_cv_balanced_accuracy:.3f}", probe]
        else:
            cells += [f"{r.best_r:.3f}", f"{r.median_abs_r:.3f}"]
        t.add_row(*cells)
    console.print(t)
    console.print(Text(s["statement"]))
    if s.get("null_total"):
        n = s["null_total"]
        console.print(f"significant over all layers: {s['n_significant_total']} (permutation null: mean {n['mean']:.3g}, "
                      f"95% {n['low']:g}-{n['high']:g}, p = {n['p_value']:.3g})", highlight=False)
    for note in s["notes"]:
        console.print(Text(f"note: {note}", style="dim"))
    if paths:
        console.print(f"wrote {len(paths)} files to {out} (tuning.html, tuning.png, neurons.csv, laminar.csv, ...)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
