"""Commands over a corpus and their outputs: `profile`, `extract`, `store check` / `store info`, `report`."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lamina.cli.checks import path_check
from lamina.cli.common import (
    ActorsOpt,
    BatchOpt,
    ContextOpt,
    CorpusOpt,
    CpusPerActorOpt,
    DeviceOpt,
    DtypeOpt,
    GpusPerActorOpt,
    JsonOpt,
    MaxDocsOpt,
    MaxTokOpt,
    ModelOpt,
    PackOpt,
    RayOpt,
    SeedOpt,
    SkipFirstOpt,
    StrideOpt,
    TextFieldOpt,
    app,
    console,
    dump,
    err_console,
    load,
    option,
    ray_executor,
    store_app,
    user_errors,
)
from lamina.errors import InputError


@app.command()
@user_errors
def profile(
    site: str = option("--site", "resid_post", more="Here: the kind profiled at every layer (resid_post, mlp_post, q, ...)."),
    method: str = typer.Option("hooks", "--method", help="hooks (raw, every layer) or hidden-states."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    corpus: str = CorpusOpt,
    text_field: str = TextFieldOpt,
    context: int = ContextOpt,
    stride: int | None = StrideOpt,
    batch_size: int = BatchOpt,
    skip_first: bool = SkipFirstOpt,
    pack: bool = PackOpt,
    max_tokens: int | None = MaxTokOpt,
    max_docs: int | None = MaxDocsOpt,
    store: Path | None = option("--store", more="Profile the layers of --site it holds instead of running the model."),
    out: Path = option("--out", Path("lamina-out/profile"), more="Here: tables, plots and HTML."),
    as_json: bool = JsonOpt,
    ray: str | None = RayOpt,
    actors: int = ActorsOpt,
    cpus_per_actor: float = CpusPerActorOpt,
    gpus_per_actor: float = GpusPerActorOpt,
):
    """Laminar profile of a site kind over a corpus: per-layer statistics and massive activations."""
    from lamina.analyses.profile.laminar import ProfileSettings, profile_store, profile_with
    from lamina.report.output import atomic_output, check_output
    from lamina.report.profile_report import write_profile

    check_output(out)
    if store is not None and ray is not None:
        raise InputError("--store reads the store in this process: drop --ray, or drop --store to run the model on Ray")
    if store is not None:
        from lamina.models.registry import load_tokenizer
        from lamina.store import ActivationStore

        stored = ActivationStore(store)
        result = profile_store(stored, site, batch_size, load_tokenizer(stored.manifest["settings"]["model"]),
                               max_tokens)
        model, method = stored.manifest["settings"]["model"], "store"
    else:
        from lamina.data.corpus import load_corpus

        settings = ProfileSettings(kind=site, method=method, context=context, stride=stride, batch_size=batch_size,
                                   skip_first=skip_first, pack=pack, max_tokens=max_tokens)
        executor = ray_executor(ray, actors, cpus_per_actor, gpus_per_actor)
        docs = load_corpus(corpus, text_field, max_docs)
        lm = load(model, seed, device, dtype)
        result = profile_with(lm, docs, settings, executor=executor)
    with atomic_output(out) as tmp:
        paths = {name: out / path.name for name, path in write_profile(result, tmp).items()}
    if as_json:
        print(dump(result.to_json()))
        return
    t = result.table
    table = Table(title=f"laminar profile: {site} by {method} on {model}")
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
    out: Path = option("--out", ..., more="Here: the store folder (an existing one with --resume)."),
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    corpus: str = CorpusOpt,
    text_field: str = TextFieldOpt,
    context: int = ContextOpt,
    stride: int | None = StrideOpt,
    batch_size: int = BatchOpt,
    store_dtype: str | None = typer.Option(None, "--store-dtype", help="Storage dtype: float16, bfloat16 or float32 (default: --dtype if given, else float16)."),
    skip_first: bool = SkipFirstOpt,
    pack: bool = PackOpt,
    max_tokens: int | None = MaxTokOpt,
    max_docs: int | None = MaxDocsOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted store."),
    windows_per_shard: int | None = typer.Option(None, "--windows-per-shard", min=1, max=2**24,
        help="Windows per shard file (default: shards of about 128 MiB); the unit a worker or Ray actor fills."),
    worker: int = typer.Option(0, "--worker", min=0, max=4095, help="This worker's index (parallel filling)."),
    workers: int = typer.Option(1, "--workers", min=1, max=4096, help="Number of workers filling the store."),
    ray: str | None = RayOpt,
    actors: int = ActorsOpt,
    cpus_per_actor: float = CpusPerActorOpt,
    gpus_per_actor: float = GpusPerActorOpt,
):
    """Capture sites over a corpus into an activation store on disk (resumable, checksummed shards)."""
    from lamina.data.corpus import load_corpus
    from lamina.extract import ExtractSettings, extract_with
    from lamina.report.output import check_output

    check_output(out)
    if dtype is not None and store_dtype is None:
        err_console.print(f"note: --dtype {dtype} is the model's dtype (as on every verb); the store keeps it too "
                          "(give --store-dtype to store another)", highlight=False, soft_wrap=True)
    settings = ExtractSettings(sites=sites, context=context, stride=stride, batch_size=batch_size,
                               dtype=store_dtype or dtype or "float16",
                               skip_first=skip_first, pack=pack, max_tokens=max_tokens,
                               windows_per_shard=windows_per_shard)
    executor = ray_executor(ray, actors, cpus_per_actor, gpus_per_actor)
    docs = load_corpus(corpus, text_field, max_docs)
    lm = load(model, seed, device, dtype)
    try:
        store = extract_with(lm, docs, settings, out, resume=resume, worker=worker, workers=workers,
                             executor=executor)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: complete shards are kept in {out}; rerun with --resume")
        raise typer.Exit(130) from None
    state = "complete" if store.complete else f"{len(store.shards)} of {store.manifest['n_shards']} shards"
    console.print(f"store {out}: {store.n_rows} tokens x {len(store.sites)} sites, {state}")


@store_app.command("check")
@user_errors
def store_check(folder: Path = typer.Argument(..., help="Store folder.", callback=path_check("input_folder"))):
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
def store_info(folder: Path = typer.Argument(..., help="Store folder.", callback=path_check("input_folder"))):
    """Print a store's manifest (settings, shards, sites)."""
    from lamina.store import ActivationStore
    from lamina.store.manifest import stored_counts

    store = ActivationStore(folder)
    counts = stored_counts(store.manifest)  # what was read, beside the corpus's size
    read = "unknown (a store made before lamina recorded it)" if counts["documents_read"] is None \
        else counts["documents_read"]
    print(dump({**store.manifest, "doc_ids": f"{len(store.manifest['doc_ids'])} documents in the corpus, {read} read",
                 "counts": counts, "complete_shards": len(store.shards), "n_rows": store.n_rows}))


@app.command()
@user_errors
def report(folder: Path = typer.Argument(Path("lamina-out"), help="Folder holding earlier results.",
                                         callback=path_check("input_folder"))):
    """One HTML report from the results found in a folder (every verb's --out folder)."""
    from lamina.report.combined import write_report

    path = write_report(folder)
    console.print(f"wrote {path}")
