"""The settings of `tune` and `maximize`: frozen dataclasses, the CLI's defaults, written to the results as they are."""
import dataclasses
import json

import pytest
import typer
from typer.testing import CliRunner

from lamina.analyses.neurons.maximize import maximize
from lamina.analyses.neurons.maximize_settings import MaximizeSettings
from lamina.analyses.tuning.contrasts import category
from lamina.analyses.tuning.run import tune
from lamina.analyses.tuning.settings import PROBE_RANKINGS, TuneSettings
from lamina.cli import app
from lamina.errors import InputError
from lamina.models.registry import DEFAULT_MODEL
from lamina.stats.probes import RANKINGS

runner = CliRunner()


def _defaults(command: str) -> dict:
    """{parameter name: default} of one command of the CLI, as click sees it."""
    cmd = typer.main.get_command(app).commands[command]
    return {p.name: p.default for p in cmd.params}


def test_cli_defaults_are_the_dataclasses():
    tune_cli, tune_lib = _defaults("tune"), TuneSettings()
    for name in ("site", "permutations", "fdr_family", "alpha", "cv", "batch_size", "reference_permutations"):
        assert tune_cli[name] == getattr(tune_lib, name), name
    assert tune_cli["rank_by"] is None and tune_lib.rank_by == RANKINGS == PROBE_RANKINGS  # None: all rankings
    max_cli, max_lib = _defaults("maximize"), MaximizeSettings()
    for name in ("position", "n_tokens", "steps", "lr", "norm_penalty", "top_k", "search_steps", "search_top_k",
                 "search_batch"):
        assert max_cli[name] == getattr(max_lib, name), name
    assert max_cli["seeds"] == 1 and max_lib.seeds == (0,)
    assert _defaults("verify")["model"] == _defaults("maximize")["model"] == DEFAULT_MODEL


def test_settings_are_frozen_normalised_and_checked():
    s = TuneSettings(layers=[1, 2], unit=["word_type"], rank_by=["l1"])
    assert (s.layers, s.unit, s.rank_by) == ((1, 2), ("word_type",), ("l1",)) and hash(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.alpha = 0.1
    assert MaximizeSettings(seeds=3).seeds == (0, 1, 2) and MaximizeSettings(seeds=[4, 7]).seeds == (4, 7)
    for bad, message in ((dict(site="mlp"), "unknown --site 'mlp'"), (dict(cv=1), "--cv must be at least 2"),
                         (dict(alpha=1.5), "alpha must be a number strictly between 0 and 1"),
                         (dict(rank_by=("lasso",)), "unknown ranking 'lasso'"),
                         (dict(fdr_family="all"), "unknown --fdr-family"),
                         (dict(permutations=-1), "must be 0 or more")):
        with pytest.raises(InputError, match=message):
            TuneSettings(**bad)
    with pytest.raises(InputError, match="^steps must be at least 1"):
        MaximizeSettings(steps=0)
    with pytest.raises(InputError, match="^norm_penalty must be a finite number >= 0"):
        MaximizeSettings(norm_penalty=-1.0)


def test_tune_writes_its_settings_and_takes_them_by_keyword(llama):
    samples = category(llama.tokenizer, max_per_group=12)
    settings = TuneSettings(layers="1", permutations=3, probes=False, n_examples=0, reference_permutations=0, seed=2)
    a = tune(llama, samples, settings, progress=False)
    b = tune(llama, samples, progress=False, **dataclasses.asdict(settings))
    c = tune(llama, samples, TuneSettings(layers="1"), permutations=3, probes=False, n_examples=0,
             reference_permutations=0, seed=2, progress=False)
    for r in (a, b, c):
        assert r.settings["tune_settings"] == dataclasses.asdict(settings)
        assert (r.null_counts == a.null_counts).all() and r.neurons["p"].equals(a.neurons["p"])
    assert json.loads(json.dumps(a.to_json()))["settings"]["tune_settings"]["layers"] == "1"


def test_cli_tune_and_maximize_write_their_settings(tmp_path):
    tuned = runner.invoke(app, ["tune", "--contrast", "category", "-m", "random:llama", "--layers", "1", "--permutations", "2",
                                "--reference-permutations", "0", "--no-probes", "--rank-by", "l1", "--json"])
    assert tuned.exit_code == 0, tuned.output
    written = json.loads(tuned.output)["settings"]["tune_settings"]
    assert written == {**dataclasses.asdict(TuneSettings(layers="1", permutations=2, reference_permutations=0,
                                                         probes=False, rank_by=("l1",), unit="default")),
                       "rank_by": ["l1"], "ks": list(TuneSettings().ks), "control": []}
    maxed = runner.invoke(app, ["maximize", "-m", "random:llama", "-n", "mlp_post.0:1", "--steps", "2", "--seeds", "2",
                                "--out", str(tmp_path), "--json"])
    assert maxed.exit_code == 0, maxed.output
    s = json.loads(maxed.output)["settings"]
    assert {k: v for k, v in s.items() if k != "prefix"} == json.loads(json.dumps(
        dataclasses.asdict(MaximizeSettings(steps=2, seeds=2))))


def test_maximize_settings_object_or_keywords(llama):
    a = maximize(llama, "mlp_post.0:1", MaximizeSettings(steps=3, seeds=2), progress=False)
    b = maximize(llama, "mlp_post.0:1", steps=3, seeds=[0, 1], progress=False)
    assert a.settings == b.settings and a.settings["seeds"] == (0, 1) and "prefix" in a.settings
    assert [r["ids"] for r in a.runs] == [r["ids"] for r in b.runs]
