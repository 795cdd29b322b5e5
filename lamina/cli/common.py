"""What every command shares: the typer `app` and its `store` sub-app, the consoles, the option vocabulary,
`user_errors` (a LaminaError becomes one line on stderr and exit status 2), `load` and `dump`.

The option vocabulary (`VOCABULARY`, built into options by `option`): every option that several verbs have
is defined here once, with one meaning, one default (the exceptions named in `Shared.by_verb`) and one
range; docs/OPTIONS.md is its table and tests/test_options.py holds every verb to both. Numeric options
carry their range (`min=` / `max=`, or a callback of `cli/checks.py`) and path options a path check
(`checks.path_check`), so a bad value is refused while the command line is parsed, before any model
loads. `OneLineErrors` prints such parse errors (and every other usage error, and a LaminaError) as one
line, as `user_errors` does. The ranges are the library's (`lamina/validate.py`): a size is at least 1;
for a limit 0 means no limit. Old spellings (`RENAMED`) still work for one release, with a line saying
the new one.
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from lamina.cli.checks import corpus_check, device_check, dtype_check, path_check
from lamina.errors import LaminaError
from lamina.models.registry import DEFAULT_MODEL
from lamina.report.jsonio import json_text


def one_line(err: BaseException) -> str:
    """An error's message on one line (a message of several lines joined with '; ')."""
    from rich.markup import escape  # a message may hold brackets: pip install 'lamina[linguistics]'

    return escape("; ".join(line.strip() for line in str(err).splitlines() if line.strip()))


class OneLineErrors(TyperGroup):
    """The root group: usage errors (an option out of range, an unknown option) as one line, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            args = rename_old_spellings(sys.argv[1:] if args is None else args)
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except LaminaError as err:  # raised outside a command's body (a callback, a sub-app)
            err_console.print(f"[bold red]error:[/] {one_line(err)}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except Exception as err:  # typer's own (vendored) click exceptions, recognised by their interface
            name = type(err).__name__
            if name == "NoArgsIsHelpError":
                err.show()
                sys.exit(2)
            if name == "Abort":
                err_console.print("aborted")
                sys.exit(1)
            if not hasattr(err, "format_message"):
                raise
            ctx = getattr(err, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            err_console.print(f"[bold red]error:[/] {one_line(err.format_message())}{hint}", highlight=False,
                              soft_wrap=True)
            sys.exit(getattr(err, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    help="lamina: read a transformer language model's insides correctly, layer by layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(emoji=False)  # never turn ":llama:" in a model name into an emoji
err_console = Console(stderr=True, emoji=False)


@dataclass(frozen=True)
class Shared:
    """One option of the vocabulary: its flags, its meaning (the first words of every verb's help), its default,
    its range; `by_verb`: the verbs whose default differs (each listed, with why, in docs/OPTIONS.md)."""

    flags: tuple[str, ...]
    meaning: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    callback: Callable | None = None
    by_verb: dict = field(default_factory=dict)
    metavar: str | None = None


COUNT_MAX = 10**6        # a count of top items kept; after loading, also at most what it indexes
SIZE_MAX = 2**16         # inputs per forward pass
CONTEXT_MAX = 2**20      # tokens per window; after loading, also at most the model's context
SAMPLED_TOKENS = 8192    # the one --max-tokens default of the verbs that score a sample of the corpus

VOCABULARY: dict[str, Shared] = {s.flags[0]: s for s in (
    Shared(("--model", "-m"), "Model spec: smollm2-135m, random:<type>, a hub id or a folder.", DEFAULT_MODEL,
           by_verb={"tune": None}),
    Shared(("--seed",), "Seed for random:<type> models and the command's random draws.", 0, min=0, max=2**32 - 1,
           by_verb={"tune": None}),
    Shared(("--device",), "Device the model runs on: cpu, cuda, cuda:N or mps.", "cpu", callback=device_check),
    Shared(("--dtype",), "Model dtype: float32, float16 or bfloat16 (default: as loaded).", None,
           callback=dtype_check),
    Shared(("--out", "-o"), "Output folder, checked before any work, written whole at the end.", None,
           callback=path_check("output_folder"),
           by_verb={"profile": Path("lamina-out/profile"), "maximize": Path("lamina-out/neurons"),
                    "top-examples": Path("lamina-out/neurons"), "extract": ...}),
    Shared(("--json",), "Print the result as one JSON object.", False),
    Shared(("--corpus", "-c"), "Corpus: builtin, a .txt/.jsonl file, a folder, or hf:NAME[:SPLIT].", "builtin",
           callback=corpus_check),
    Shared(("--text-field",), "JSONL field holding the text.", "text"),
    Shared(("--max-tokens",), "Corpus tokens read at most (0: no limit).", 0, min=0,
           by_verb={"tune": SAMPLED_TOKENS, "ablate": SAMPLED_TOKENS, "steer": SAMPLED_TOKENS}),
    Shared(("--max-docs",), "Use only the first N documents (0: no limit).", 0, min=0),
    Shared(("--max-pairs",), "Use the first N pairs (0: all).", 0, min=0),
    Shared(("--context",), "Tokens per window.", 128, min=2, max=CONTEXT_MAX),
    Shared(("--stride",), "Tokens between window starts, at most --context (default: --context, no overlap).",
           None, min=1, max=CONTEXT_MAX),
    Shared(("--batch-size",), "Inputs per forward pass.", 8, min=1, max=SIZE_MAX, by_verb={"patch": 32}),
    Shared(("--skip-first",), "Leave each window's first token out of statistics.", False),
    Shared(("--pack",), "Join documents into full windows (no padding; windows cross documents).", False),
    Shared(("-k",), "How many top items to keep (a count).", 20, min=1, max=COUNT_MAX,
           by_verb={"logit-lens": 5, "top-examples": 10}),
    Shared(("--site", "-s"), "Site: a kind (every layer) or KIND.LAYER (docs/SITES.md).", None,
           by_verb={"profile": "resid_post", "patch": "resid_pre", "tune": "mlp_post"}),
    Shared(("--layers", "-l"), "Layers: all, a range 0-7, or a list 3,5,7.", None, by_verb={"tune": "all"}),
    Shared(("--store",), "An activation store folder (lamina extract).", None, callback=path_check("input_folder")),
    Shared(("--from-tune",), "A `lamina tune --out` folder.", None, callback=path_check("input_folder")),
    Shared(("--top",), "--from-tune: the top K tuned neurons per layer, tested against random draws of K.", None,
           min=1, max=COUNT_MAX, by_verb={"ablate": 10}),
    Shared(("--prompts",), "File of prompts, one a line, scored by log p(--target) after each.", None,
           callback=path_check("input_file")),
    Shared(("--target",), "Target tokens, comma-separated single tokens, scored by log-prob after each prompt.",
           None, by_verb={"steer": " not"}),
    Shared(("--text", "-t"), "Input text (repeatable).", None),
    Shared(("--file", "-f"), "File with one input text per non-blank line.", None, callback=path_check("input_file")),
    Shared(("--truncate",), "Cut texts longer than the model's context (with a warning).", False),
    Shared(("--ray",), "Run on a Ray actor pool: auto (a running cluster, else a local one), local, or a cluster's "
           "HOST:PORT / ray://HOST:PORT. Needs pip install 'lamina\\[ray]'; see docs/SCALING.md.", None,
           metavar="auto|local|ADDRESS"),
    Shared(("--actors",), "With --ray: model replicas in the actor pool.", 1, min=1, max=4096),
    Shared(("--cpus-per-actor",), "With --ray: CPUs per actor.", 1.0, min=0, max=4096),
    Shared(("--gpus-per-actor",), "With --ray: GPUs per actor (fractions share one).", 0.0, min=0, max=64),
)}

# Old spellings, accepted for one release: each prints one line naming the new one (to stderr).
RENAMED: dict[str, dict[str, str]] = {
    "profile": {"--kind": "--site", "-k": "--site"},
    "patch": {"--kind": "--site", "-k": "--site"},
    "tune": {"-c": "--contrast"},
    "steer": {"--alpha": "--multipliers"},
}

_SAME = object()


def option(name: str, default: Any = _SAME, more: str = "", **extra):
    """The vocabulary's option `name` (its flags, range and check), with this verb's `default` where it differs
    (see `Shared.by_verb`) and `more` help after the shared meaning."""
    s = VOCABULARY[name]
    kwargs = {k: v for k, v in (("min", s.min), ("max", s.max), ("callback", s.callback), ("metavar", s.metavar))
              if v is not None}
    return typer.Option(s.default if default is _SAME else default, *s.flags,
                        help=f"{s.meaning} {more}".strip(), **kwargs, **extra)


def rename_old_spellings(args: list[str]) -> list[str]:
    """The command line with the old spellings of RENAMED replaced, one line on stderr for each."""
    args = list(args)
    command = next((a for a in args if not a.startswith("-")), None)
    table = RENAMED.get(command, {})
    for i, arg in enumerate(args):
        if arg == "--":
            break
        flag, eq, value = arg.partition("=")
        if flag in table:
            new = table[flag]
            args[i] = new + eq + value
            err_console.print(f"note: `lamina {command} {flag}` is now `{new}`; the old spelling goes in the next "
                              "release", highlight=False, soft_wrap=True)
    return args


ModelOpt = option("--model")
SeedOpt = option("--seed")
DeviceOpt = option("--device")
DtypeOpt = option("--dtype")
JsonOpt = option("--json")
TextOpt = option("--text")
FileOpt = option("--file")
TruncOpt = option("--truncate")
CorpusOpt = option("--corpus")
TextFieldOpt = option("--text-field")
ContextOpt = option("--context")
StrideOpt = option("--stride")
BatchOpt = option("--batch-size")
SkipFirstOpt = option("--skip-first")
PackOpt = option("--pack")
MaxTokOpt = option("--max-tokens")
MaxDocsOpt = option("--max-docs")
RayOpt = option("--ray")
ActorsOpt = option("--actors")
CpusPerActorOpt = option("--cpus-per-actor")
GpusPerActorOpt = option("--gpus-per-actor")


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
            err_console.print(f"[bold red]error:[/] {one_line(err)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def load(model: str, seed: int, device: str = "cpu", dtype: str | None = None):
    """`lamina.load` behind a spinner on stderr."""
    import lamina

    with err_console.status(f"loading {model}..."):
        return lamina.load(model, seed=seed, device=device, dtype=dtype)


def check_count(flag: str, value: int | None, bound: int, what: str) -> int | None:
    """A count that indexes something known only after loading (the vocabulary, a site's width, a store's
    rows): at most `bound`, else one line naming the bound."""
    from lamina.errors import InputError

    if value is not None and value > bound:
        raise InputError(f"{flag} {value} is more than {what} ({bound}); give at most {bound}")
    return value


def dump(obj) -> str:
    """Results as indented strict JSON text (NaN as null; see report/jsonio.py)."""
    return json_text(obj)


store_app = typer.Typer(help="Inspect activation stores.", no_args_is_help=True)
app.add_typer(store_app, name="store")


def ray_executor(address: str | None, actors: int, cpus_per_actor: float, gpus_per_actor: float):
    """The `--ray` options as a `RayExecutor` (None without --ray); no Ray installed: one line, before any work."""
    if address is None:
        return None
    from lamina.ray_jobs import RayExecutor, RaySettings, require_ray

    require_ray()
    return RayExecutor(RaySettings(address=address, actors=actors, cpus_per_actor=cpus_per_actor,
                                   gpus_per_actor=gpus_per_actor))
