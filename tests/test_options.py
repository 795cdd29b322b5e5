"""The option rules over every verb, read from the typer app itself (so a new option cannot skip them):

- every numeric option is bounded at parse time (below, and above unless allow-listed here with why), and a
  value out of its range exits 2 with one line naming the option, before anything loads;
- every path option goes through one typed check (`cli/checks.path_check`): a missing path, a file where a
  folder is expected, a folder where a file is expected exit 2 with one line;
- the vocabulary (`cli/common.VOCABULARY`): the same name means the same thing, with the same flags and
  default, on every verb; docs/OPTIONS.md lists every shared option with its default and verbs;
- old spellings still work, with one line naming the new one; counts known only after loading are bounded
  by what they index.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
import typer.main
from typer.testing import CliRunner

import lamina
from lamina.cli import app
from lamina.cli.checks import PATH_RULES
from lamina.cli.common import RENAMED, VOCABULARY, rename_old_spellings

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

# Numeric options with no upper bound, each for a reason: a limit where any large value means "all" (0 says
# "no limit" too), or a float whose large values are legitimate.
UNBOUNDED_ABOVE = {
    "max_tokens", "max_docs", "max_per_group", "max_pairs",   # limits: 0 or more than there is = all
    "loss_tokens", "reference_tokens",                       # ablate's token budgets, limits too
    "lr", "norm_penalty",                                    # maximize: any finite positive step or weight
}
# Long names that several verbs use for different things, on purpose (not in the vocabulary).
NOT_SHARED = {
    "--neuron": "one neuron SITE:INDEX; top-examples takes several",
    "--random": "ablate and steer: random draws per layer; top-examples: random tokens shown",
    "--method": "profile: hooks or hidden-states; ablate: zero, mean or resample",
    "--sites": "extract and index: a list of stored sites",
    "--metric": "patch: logit-diff or kl; ablate --from-tune: loss, kl, target, pair-kl or probe",
}
# Short flags shared by a singular and a plural long name of the same thing.
SHORT_PAIRS = {"-s": {"--site", "--sites"}, "-n": {"--neuron", "--neurons"}}


def verbs(group=None, prefix=()):
    """(verb, click command) for every command of the app, sub-apps included ('store info')."""
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from verbs(cmd, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), cmd


VERBS = dict(verbs())
PARAMS = [(verb, p) for verb, cmd in VERBS.items() for p in cmd.params]


def annotation(p) -> str:
    return str(p.type_descriptor.annotation)


def is_numeric(p) -> bool:
    return annotation(p) in ("<class 'int'>", "<class 'float'>") and not p.is_flag


def is_path(p) -> bool:
    return "Path" in annotation(p) or hasattr(p.callback, "path_rule")


def bounds(p):
    """(low, high) of a numeric option: min=/max=, or the bounds of its callback."""
    if p.min is not None or p.max is not None:
        return p.min, p.max
    return getattr(p.callback, "bounds", (None, None))


def flag(p) -> str:
    return p.opts[0]


def invoke(args):
    return runner.invoke(app, args, catch_exceptions=True)


def one_line_error(result, must_name: str) -> str:
    """Exit 2, no traceback, one line on stderr that names `must_name`."""
    err = result.stderr.strip()
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == 2, (result.exit_code, err)
    assert len(err.splitlines()) == 1, err
    assert must_name.lower() in err.lower(), err
    return err


def test_the_app_has_every_verb():
    assert {"verify", "logit-lens", "project", "profile", "extract", "store check", "store info", "report",
            "maximize", "top-examples", "tune", "tune-compare", "index", "browse", "ablate", "patch",
            "steer"} <= set(VERBS)


@pytest.mark.parametrize("verb,p", [(v, p) for v, p in PARAMS if is_numeric(p)],
                         ids=[f"{v} {flag(p)}" for v, p in PARAMS if is_numeric(p)])
def test_every_numeric_option_is_bounded(verb, p):
    low, high = bounds(p)
    assert low is not None, f"{verb} {flag(p)} has no lower bound: give it min= (or a checks.py callback)"
    assert high is not None or p.name in UNBOUNDED_ABOVE, \
        f"{verb} {flag(p)} has no upper bound: give it max=, or add it to UNBOUNDED_ABOVE with the reason"


def bad_numbers():
    cases = []
    for verb, p in PARAMS:
        if not is_numeric(p):
            continue
        low, high = bounds(p)
        is_int = annotation(p) == "<class 'int'>"
        below = [low - 1] if is_int else [low - 0.5]
        if low > 0:
            below.append(0)
        low_open, high_open = getattr(p.callback, "open_ends", (False, False))
        if low_open:                                  # an open end: the bound itself is refused
            below.append(low)
        above = [] if high is None else [high + 1 if is_int else high * 10 + 1]
        if high_open:
            above.append(high)
        cases += [(verb, flag(p), v) for v in below + above]
    return cases


BAD_NUMBERS = bad_numbers()


@pytest.mark.parametrize("verb,name,value", BAD_NUMBERS, ids=[f"{v} {n} {x}" for v, n, x in BAD_NUMBERS])
def test_numbers_out_of_range_exit_2_at_parse_time(verb, name, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lamina, "load", lambda *a, **k: pytest.fail("loaded a model for a bad option"))
    one_line_error(invoke([*verb.split(), name, str(value)]), name)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("verb,p", [(v, p) for v, p in PARAMS if is_path(p)],
                         ids=[f"{v} {flag(p)}" for v, p in PARAMS if is_path(p)])
def test_every_path_option_has_a_typed_check(verb, p):
    assert getattr(p.callback, "path_rule", None) in PATH_RULES, \
        f"{verb} {flag(p)} is a path without a check: give it callback=path_check(RULE)"


def bad_paths():
    """(verb, flag or None for an argument, its position, the bad value's kind) for every path option."""
    cases = []
    for verb, p in PARAMS:
        if not is_path(p):
            continue
        rule = p.callback.path_rule
        kinds = {"input_file": ["missing", "folder"], "input_folder": ["missing", "file"],
                 "input_path": ["missing"], "output_folder": ["file", "under_file"],
                 "output_file": ["folder"]}[rule]
        name = flag(p) if p.param_type_name == "option" else None
        cases += [(verb, name, p.name, kind) for kind in kinds]
    return cases


BAD_PATHS = bad_paths()


@pytest.mark.parametrize("verb,name,pname,kind", BAD_PATHS, ids=[f"{v} {n or p} {k}" for v, n, p, k in BAD_PATHS])
def test_bad_paths_exit_2_at_parse_time(verb, name, pname, kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lamina, "load", lambda *a, **k: pytest.fail("loaded a model for a bad path"))
    (tmp_path / "a_file.txt").write_text("x\n")
    (tmp_path / "a_folder").mkdir()
    value = {"missing": "missing.json", "folder": "a_folder", "file": "a_file.txt",
             "under_file": "a_file.txt/sub"}[kind]
    args = [*verb.split(), name, value] if name else [*verb.split(), value]
    if name is None and verb == "tune-compare" and pname == "run_b":
        args = [*verb.split(), "a_folder", value]
    one_line_error(invoke(args), name or pname)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.txt", "a_folder"]
    assert not any((tmp_path / "a_folder").iterdir())


def test_the_vocabulary_holds_on_every_verb():
    """Same name, same flags, same meaning (the help starts with it), same default (or a listed exception)."""
    seen = {}
    for verb, p in PARAMS:
        for opt in p.opts:
            if opt in VOCABULARY:
                s = VOCABULARY[opt]
                assert tuple(p.opts) == s.flags, (verb, p.opts, s.flags)
                assert (p.help or "").startswith(s.meaning), (verb, opt, p.help)
                expected = s.by_verb.get(verb, s.default)
                if expected is ...:
                    assert p.required, (verb, opt)
                else:
                    assert p.default == expected, (verb, opt, p.default, expected)
                seen.setdefault(opt, set()).add(verb)
    for opt, s in VOCABULARY.items():
        assert set(s.by_verb) <= seen.get(opt, set()), (opt, "a default listed for a verb without the option")
    # every long name used by several verbs is in the vocabulary or named in NOT_SHARED
    users = {}
    for verb, p in PARAMS:
        for opt in p.opts:
            if opt.startswith("--"):
                users.setdefault(opt, set()).add(verb)
    for opt, where in users.items():
        if len(where) > 1:
            assert opt in VOCABULARY or opt in NOT_SHARED, f"{opt} is on {sorted(where)}: add it to VOCABULARY"


def test_one_letter_one_meaning():
    shorts = {}
    for _verb, p in PARAMS:
        long = [o for o in p.opts if o.startswith("--")]
        for o in p.opts:
            if re.fullmatch(r"-\w", o):
                shorts.setdefault(o, set()).update(long or [p.name])
    for short, longs in shorts.items():
        assert len(longs) == 1 or longs <= SHORT_PAIRS.get(short, set()), (short, longs)
    assert shorts["-c"] == {"--corpus"} and shorts["-k"] == {"k"}
    for verb, p in PARAMS:
        if "-k" in p.opts:
            assert annotation(p) == "<class 'int'>", f"{verb} -k is a count everywhere"
        assert "--kind" not in p.opts and "--alpha" not in p.opts or verb == "tune", (verb, p.opts)


def test_device_and_dtype_on_every_verb_that_loads_a_model():
    for verb in ("verify", "logit-lens", "project", "profile", "extract", "maximize", "top-examples", "tune",
                 "ablate", "patch", "steer"):
        names = {o for p in VERBS[verb].params for o in p.opts}
        assert {"--model", "--seed", "--device", "--dtype"} <= names, verb


@pytest.mark.parametrize("args,name", [
    (["verify", "--device", "gpu7"], "--device"),
    (["verify", "--device", "cuda:99"], "--device"),
    (["profile", "--dtype", "float8"], "--dtype"),
])
def test_device_and_dtype_refused_at_parse_time(args, name, monkeypatch):
    monkeypatch.setattr(lamina, "load", lambda *a, **k: pytest.fail("loaded a model for a bad option"))
    one_line_error(invoke(args), name)


def test_old_spellings_still_work_with_one_line_naming_the_new_one(capsys):
    for verb, table in RENAMED.items():
        options = {o for p in VERBS[verb].params for o in p.opts}
        for old, new in table.items():
            assert new in options and old not in options, (verb, old, new)
            assert rename_old_spellings([verb, old, "x"]) == [verb, new, "x"]
            assert rename_old_spellings([verb, f"{old}=x"]) == [verb, f"{new}=x"]
            assert f"`{new}`" in capsys.readouterr().err
    assert rename_old_spellings(["verify", "--kind", "x"]) == ["verify", "--kind", "x"]  # only where renamed
    # end to end: the old spelling reaches the new option (here refused by the site grammar, after one note)
    result = invoke(["profile", "--kind", "nope", "--model", "random:llama", "--max-tokens", "64"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 2, result.stderr
    assert "`--site`" in lines[0] and "nope" in lines[1]


@pytest.mark.parametrize("args,bound", [
    (["logit-lens", "-k", "50258", "--text", "The cat"], "the vocabulary (50257)"),
    (["project", "-k", "50258", "--neuron", "mlp_post.0:1"], "the vocabulary (50257)"),
    (["maximize", "--top-k", "50258", "--neuron", "mlp_post.0:1", "--steps", "1"], "the vocabulary (50257)"),
])
def test_counts_bounded_by_what_they_index(args, bound, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(invoke([*args, "--model", "random:llama"]), bound)
    assert f"at most {bound.split('(')[1][:-1]}" in err


def table_rows() -> dict[str, list[str]]:
    """docs/OPTIONS.md's vocabulary table: first flag -> [flags, meaning, default, verbs]."""
    rows = {}
    for line in (ROOT / "docs" / "OPTIONS.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`-"):
            rows[re.findall(r"`(-[^`]+)`", cells[0])[0]] = cells
    return rows


def shown(value) -> str:
    """A default as the table writes it."""
    for special, text in ((None, "none"), (False, "off"), (True, "on"), (..., "required")):
        if value is special:
            return text
    return str(value)


def test_the_docs_table_matches_the_app():
    rows = table_rows()
    for opt, s in VOCABULARY.items():
        assert opt in rows, f"docs/OPTIONS.md has no row for {opt}"
        flags, meaning, default, where = rows[opt]
        assert re.findall(r"`(-[^`]+)`", flags) == list(s.flags), (opt, flags)
        assert f"`{shown(s.default)}`" in default, (opt, default, shown(s.default))
        for verb, d in s.by_verb.items():
            assert f"{verb}: `{shown(d)}`" in default, (opt, verb, default)
        having = {v for v, cmd in VERBS.items() if any(opt in p.opts for p in cmd.params)}
        listed = set(re.findall(r"`([a-z][a-z -]*)`", where)) if where != "every verb" else set(VERBS)
        assert listed == having, (opt, sorted(listed ^ having))
    assert (ROOT / "README.md").read_text().count("docs/OPTIONS.md") >= 1


def test_a_lamina_error_of_several_lines_prints_one(capsys):
    from lamina.cli.common import user_errors
    from lamina.errors import SiteError

    @user_errors
    def command():
        raise SiteError("unknown site 'mlp_pots.3'\nclose matches: mlp_post.3, mlp_pre.3")

    with pytest.raises(typer.Exit) as exit_:
        command()
    err = capsys.readouterr().err.strip()
    assert exit_.value.exit_code == 2
    assert err == "error: unknown site 'mlp_pots.3'; close matches: mlp_post.3, mlp_pre.3"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_of_every_verb(verb):
    result = invoke([*verb.split(), "--help"])
    assert result.exit_code == 0 and "Usage" in result.output, result.output
    assert "--kind" not in result.output      # old spellings are hidden


def test_python_dash_m_lamina_runs_the_command_line():
    """`python -m lamina VERB` is `lamina VERB`: the verify of a random model, as JSON, with its exit status 0."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "lamina", "verify", "--model", "random:llama", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["model"], result["n_layers"], result["ok"]) == ("random:llama", 4, True)
