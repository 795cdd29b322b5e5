"""What every command shares: the typer `app` and its `store` sub-app, the consoles, common options,
`user_errors` (a LaminaError becomes one line on stderr and exit status 2), `load` and `dump`.

Numeric options carry their valid range (`min=`, or the `unit_interval` callback), so a value out of range
is refused while the command line is parsed, before any model loads; `OneLineErrors` prints such parse
errors (and every other usage error) as one line, as `user_errors` does for LaminaError. The ranges are
the library's (`lamina/validate.py`): a size is at least 1; for a limit 0 means no limit.
"""
from __future__ import annotations

import functools
import math
import sys

import typer
from rich.console import Console
from typer.core import TyperGroup

from lamina.errors import LaminaError
from lamina.models.registry import DEFAULT_MODEL
from lamina.report.jsonio import json_text


class OneLineErrors(TyperGroup):
    """The root group: usage errors (an option out of range, an unknown option) as one line, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
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
            err_console.print(f"[bold red]error:[/] {err.format_message()}{hint}", highlight=False, soft_wrap=True)
            sys.exit(getattr(err, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


def unit_interval(value):
    """Typer callback: a number strictly between 0 and 1 (alpha)."""
    if value is not None and not 0 < value < 1:
        raise typer.BadParameter(f"must be strictly between 0 and 1, not {value}")
    return value


def positive_number(value):
    """Typer callback: a finite number > 0 (a learning rate)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a finite number > 0, not {value}")
    return value


def non_negative_number(value):
    """Typer callback: a finite number >= 0 (a penalty weight)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"must be a finite number >= 0, not {value}")
    return value


app = typer.Typer(
    cls=OneLineErrors,
    help="lamina: read a transformer language model's insides correctly, layer by layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(emoji=False)  # never turn ":llama:" in a model name into an emoji
err_console = Console(stderr=True, emoji=False)

ModelOpt = typer.Option(DEFAULT_MODEL, "--model", "-m", help=f"Model spec: {DEFAULT_MODEL}, random:<type>, hub id or folder.")
SeedOpt = typer.Option(0, "--seed", min=0, help="Seed for random:<type> models.")
JsonOpt = typer.Option(False, "--json", help="Print the result as one JSON object.")
TextOpt = typer.Option(None, "--text", "-t", help="Input text (repeatable).")
FileOpt = typer.Option(None, "--file", "-f", help="File with one input text per non-blank line.")
TruncOpt = typer.Option(False, "--truncate", help="Cut texts longer than the model's context (with a warning).")

CorpusOpt = typer.Option("builtin", "--corpus", "-c", help="builtin, a .txt/.jsonl file, a folder, or hf:NAME[:SPLIT].")
TextFieldOpt = typer.Option("text", "--text-field", help="JSONL field holding the text.")
ContextOpt = typer.Option(128, "--context", min=2, help="Tokens per window.")
StrideOpt = typer.Option(None, "--stride", min=1, help="Tokens between window starts, at most --context (default: --context, no overlap).")
BatchOpt = typer.Option(8, "--batch-size", min=1, help="Windows per forward pass.")
SkipFirstOpt = typer.Option(False, "--skip-first", help="Leave each window's first token out of statistics.")
PackOpt = typer.Option(False, "--pack", help="Join documents into full windows (no padding; windows cross documents).")
MaxTokOpt = typer.Option(None, "--max-tokens", min=0, help="Stop after this many tokens (0: no limit).")
MaxDocsOpt = typer.Option(None, "--max-docs", min=0, help="Use only the first N documents (0: no limit).")
RayOpt = typer.Option(None, "--ray", metavar="auto|local|ADDRESS",
    help="Run on a Ray actor pool: auto (a running cluster, else a local one), local, or a cluster's HOST:PORT "
         "/ ray://HOST:PORT. Needs pip install 'lamina\\[ray]'; see docs/SCALING.md.")
ActorsOpt = typer.Option(1, "--actors", min=1, help="With --ray: model replicas in the actor pool.")
CpusPerActorOpt = typer.Option(1.0, "--cpus-per-actor", min=0, help="With --ray: CPUs per actor.")
GpusPerActorOpt = typer.Option(0.0, "--gpus-per-actor", min=0, help="With --ray: GPUs per actor (fractions share one).")


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
            from rich.markup import escape  # a message may hold brackets: pip install 'lamina[linguistics]'

            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def load(model: str, seed: int):
    """`lamina.load` behind a spinner on stderr."""
    import lamina

    with err_console.status(f"loading {model}..."):
        return lamina.load(model, seed=seed)


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
