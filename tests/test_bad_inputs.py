"""The catalogue of bad inputs and faults: every case gives one clear line (CLI: exit 2, or 1 for a failed
check) or a LaminaError subclass (API), never a traceback, and writes nothing.

Cases follow issue 13: numeric options out of range, output folders that cannot receive results, bad
corpora, unknown models, API misuse, and store faults (flipped byte, truncation, deleted shard, bad
sidecar, concurrent writers, a stale lock, disk full on a small tmpfs when running as root). The kill -9
then --resume case is `tests/test_store.py::test_resume_after_kill_9` (the killed child's lock is stale
there, so it also proves the lock is taken over).
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import lamina
from lamina.cli import app
from lamina.data.corpus import load_corpus
from lamina.errors import InputError, LaminaError, ModelSpecError, NotCapturedError, SiteError, StoreError
from lamina.extract import extract
from lamina.report.output import atomic_output
from lamina.store import ActivationStore
from lamina.store.lock import StoreLock, lock_path

SITES = ["resid_post.1", "mlp_post.2"]
runner = CliRunner()


def run_cli(args: list[str]):
    return runner.invoke(app, args, catch_exceptions=True)


def assert_one_line(result, code: int, pattern: str) -> str:
    """Exit status `code`, one line on stderr matching `pattern`, no traceback, no uncaught exception."""
    err = result.stderr.strip()
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output + err
    assert result.exit_code == code, (result.exit_code, err)
    assert len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err
    return err


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """An empty current folder: after a refused command it must still be empty."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def nothing_written(folder: Path, allowed=()) -> bool:
    return sorted(p.name for p in folder.iterdir() if p.name not in allowed) == []


# ---- numeric options: refused while parsing, before any model loads --------------------------------------
BAD_NUMBERS = [
    (["profile", "--batch-size", "0"], "--batch-size"),
    (["profile", "--batch-size", "-3"], "--batch-size"),
    (["profile", "--batch-size", "abc"], "--batch-size"),
    (["profile", "--context", "1"], "--context"),
    (["profile", "--stride", "0"], "--stride"),
    (["profile", "--max-tokens", "-1"], "--max-tokens"),
    (["profile", "--max-docs", "-1"], "--max-docs"),
    (["extract", "--sites", "resid_post", "--out", "s", "--batch-size", "-3"], "--batch-size"),
    (["extract", "--sites", "resid_post", "--out", "s", "--workers", "0"], "--workers"),
    (["extract", "--sites", "resid_post", "--out", "s", "--worker", "-1"], "--worker"),
    (["extract", "--sites", "resid_post", "--out", "s", "--max-tokens", "-5"], "--max-tokens"),
    (["tune", "--contrast", "negation", "--alpha", "2"], "--alpha"),
    (["tune", "--contrast", "negation", "--alpha", "0"], "--alpha"),
    (["tune", "--contrast", "negation", "--alpha", "1"], "--alpha"),
    (["tune", "--contrast", "negation", "--cv", "1"], "--cv"),
    (["tune", "--contrast", "negation", "--permutations", "-1"], "--permutations"),
    (["tune", "--contrast", "negation", "--max-per-group", "-5"], "--max-per-group"),
    (["tune", "--contrast", "negation", "--batch-size", "0"], "--batch-size"),
    (["tune", "--contrast", "negation", "--max-docs", "-2"], "--max-docs"),
    (["maximize", "-n", "mlp_post.0:1", "--steps", "0"], "--steps"),
    (["maximize", "-n", "mlp_post.0:1", "--n-tokens", "0"], "--n-tokens"),
    (["maximize", "-n", "mlp_post.0:1", "--lr", "0"], "--lr"),
    (["maximize", "-n", "mlp_post.0:1", "--lr", "nan"], "--lr"),
    (["maximize", "-n", "mlp_post.0:1", "--norm-penalty", "-1"], "--norm-penalty"),
    (["maximize", "-n", "mlp_post.0:1", "--seeds", "0"], "--seeds"),
    (["maximize", "-n", "mlp_post.0:1", "--search-top-k", "0"], "--search-top-k"),
    (["top-examples", "-n", "mlp_post.0:1", "-k", "0"], "'-k'"),
    (["top-examples", "-n", "mlp_post.0:1", "--context", "1"], "--context"),
    (["top-examples", "-n", "mlp_post.0:1", "--random", "-1"], "--random"),
    (["logit-lens", "-k", "0"], "'-k'"),
    (["project", "-n", "mlp_post.0:1", "-k", "0"], "'-k'"),
    (["verify", "--seed", "-1"], "--seed"),
    (["profile", "--no-such-option"], "No such option"),
]


@pytest.mark.parametrize("args,flag", BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_numeric_option_refused_at_parse_time(workdir, args, flag):
    assert_one_line(run_cli(args), 2, re.escape(flag) if flag.startswith("-") else flag)
    assert nothing_written(workdir)


# ---- output folders: checked before any computation ------------------------------------------------------
OUT_COMMANDS = [
    ["profile", "--model", "random:llama"],
    ["verify", "--model", "random:llama"],
    ["logit-lens", "--model", "random:llama"],
    ["project", "--model", "random:llama", "-n", "mlp_post.0:1"],
    ["tune", "--model", "random:llama", "--contrast", "negation"],
    ["maximize", "--model", "random:llama", "-n", "mlp_post.0:1"],
    ["top-examples", "--model", "random:llama", "-n", "mlp_post.0:1"],
    ["extract", "--model", "random:llama", "--sites", "resid_post"],
    ["ablate", "--model", "random:llama", "--site", "mlp_post.0"],
    ["patch", "--model", "random:llama", "--clean", "The cat", "--corrupt", "The dog"],
    ["steer", "--model", "random:llama", "--neuron", "mlp_post.0:1"],
]


@pytest.mark.parametrize("args", OUT_COMMANDS, ids=[a[0] for a in OUT_COMMANDS])
def test_out_is_a_file(workdir, args):
    (workdir / "taken").write_text("not a folder")
    assert_one_line(run_cli(args + ["--out", "taken"]), 2, r"taken is a file")
    assert (workdir / "taken").read_text() == "not a folder" and nothing_written(workdir, {"taken"})


@pytest.mark.parametrize("args", OUT_COMMANDS[:3], ids=[a[0] for a in OUT_COMMANDS[:3]])
def test_out_not_writable(workdir, args):
    assert_one_line(run_cli(args + ["--out", "/proc/lamina-x"]), 2, r"not writable")


def test_out_under_a_file(workdir):
    (workdir / "f").write_text("x")
    assert_one_line(run_cli(["profile", "--out", "f/sub"]), 2, r"cannot be created: .* is a file")


def test_report_needs_results(workdir):
    assert_one_line(run_cli(["report", "missing"]), 2, r"missing does not exist")
    (workdir / "empty").mkdir()
    assert_one_line(run_cli(["report", "empty"]), 2, r"no lamina results")
    assert nothing_written(workdir / "empty")


def test_interrupted_write_keeps_old_results(tmp_path):
    """Ctrl-C while results are written: the old folder stays whole, no temporary folder is left."""
    out = tmp_path / "profile"
    out.mkdir()
    (out / "profile.json").write_text("old")
    (out / "profile.png").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(out) as tmp:
            (tmp / "profile.csv").write_text("new")
            raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["profile.json", "profile.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["profile"]
    with atomic_output(out) as tmp:  # a complete run: the folder is replaced whole
        (tmp / "profile.json").write_text("new")
        (tmp / "profile.png").write_text("new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"profile.json": "new", "profile.png": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["profile"]


def test_shared_folder_keeps_other_results(tmp_path):
    out = tmp_path / "neurons"
    out.mkdir()
    (out / "maximize_a.json").write_text("a")
    with atomic_output(out, keep=True) as tmp:
        (tmp / "top_examples.json").write_text("t")
    assert sorted(p.name for p in out.iterdir()) == ["maximize_a.json", "top_examples.json"]


def test_profile_cli_writes_whole_folder(workdir):
    result = run_cli(["profile", "--model", "random:llama", "--max-tokens", "64", "--context", "32",
                      "--out", "p", "--json"])
    assert result.exit_code == 0, result.stderr
    names = {p.name for p in (workdir / "p").iterdir()}
    assert {"profile.json", "profile.csv", "profile.html"} <= names
    assert sorted(p.name for p in workdir.iterdir()) == ["p"]  # no temporary folder left beside it


# ---- corpora ---------------------------------------------------------------------------------------------
BAD_JSONL = [
    ('{"text": null}', r"c.jsonl:2: field 'text' is null"),
    ('{"text": 5}', r"c.jsonl:2: field 'text' is a int"),
    ('{"text": ["a"]}', r"c.jsonl:2: field 'text' is a list"),
    ('{"body": "x"}', r"c.jsonl:2 has no field 'text'"),
    ('{"text": "x"', r"c.jsonl:2 is not valid JSON"),
]


@pytest.mark.parametrize("line,pattern", BAD_JSONL, ids=[b for b, _ in BAD_JSONL])
def test_bad_jsonl_line(workdir, line, pattern):
    (workdir / "c.jsonl").write_text('{"text": "fine"}\n' + line + "\n")
    assert_one_line(run_cli(["profile", "--corpus", "c.jsonl", "--out", "o"]), 2, pattern)
    with pytest.raises(InputError, match=pattern):
        load_corpus(workdir / "c.jsonl")
    assert nothing_written(workdir, {"c.jsonl"})


def test_missing_corpus_and_empty_folder(workdir):
    assert_one_line(run_cli(["profile", "--corpus", "nope.txt"]), 2, r"corpus nope.txt does not exist")
    (workdir / "d").mkdir()
    assert_one_line(run_cli(["profile", "--corpus", "d"]), 2, r"no .txt or .jsonl files")


def test_max_docs_zero_means_no_limit():
    assert len(load_corpus(max_docs=0)) == len(load_corpus()) > 3
    with pytest.raises(InputError, match="max_docs must be at least 0"):
        load_corpus(max_docs=-1)


def test_max_tokens_zero_means_no_limit(llama):
    from lamina.data.windows import corpus_windows

    docs = load_corpus(max_docs=2)
    assert corpus_windows(llama, docs, 32, max_tokens=0) == corpus_windows(llama, docs, 32, max_tokens=None)
    with pytest.raises(InputError, match="max_tokens must be at least 0"):
        corpus_windows(llama, docs, 32, max_tokens=-1)


# ---- models ----------------------------------------------------------------------------------------------
BAD_MODELS = [
    ("gtp2-small", r"unknown model 'gtp2-small': did you mean random:gpt2 or openai-community/gpt2"),
    ("lama", r"did you mean random:llama"),
    ("random:gtp2", r"no model type 'gtp2'; did you mean random:gpt2"),
    ("./no-such-folder", r"model folder ./no-such-folder does not exist"),
    ("/no/such/folder", r"model folder /no/such/folder does not exist"),
    ("~/no-such-lamina-model", r"does not exist"),
    ("no such model", r"unknown model"),
]


@pytest.fixture
def reached(monkeypatch):
    """What a refused model spec must not need, counted: TCP connections, and transformers' from_pretrained
    (which goes through the hub client's retries offline). Both still run; only the count is added."""
    import transformers

    counts = {"connections": [], "from_pretrained": 0}
    real_connect, real_load = socket.create_connection, transformers.AutoModelForCausalLM.from_pretrained

    def connect(address, *args, **kwargs):
        counts["connections"].append(address)
        return real_connect(address, *args, **kwargs)

    def from_pretrained(*args, **kwargs):
        counts["from_pretrained"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    return counts


@pytest.mark.parametrize("spec,pattern", BAD_MODELS, ids=[s for s, _ in BAD_MODELS])
def test_unknown_model_fails_at_once(workdir, reached, spec, pattern):
    """Refused by the spec check itself: no connection to the hub, no transformers loading."""
    assert_one_line(run_cli(["verify", "--model", spec, "--out", "v"]), 2, pattern)
    assert reached == {"connections": [], "from_pretrained": 0}
    assert nothing_written(workdir)


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelSpecError, match="has no config.json"):
        lamina.load(str(tmp_path))


def hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(hub_reachable(), reason="the hub is reachable: the offline path cannot be exercised")
def test_offline_hub_id_fails_fast(reached):
    """Refused after at most one TCP probe of the hub (3 s timeout), never through from_pretrained's retries."""
    with pytest.raises(ModelSpecError, match="not reachable .*not in the local cache"):
        lamina.load("openai-community/gpt2")
    assert len(reached["connections"]) <= 1 and reached["from_pretrained"] == 0


# ---- the Python API --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [123, 1.5, ["random:llama"], {"a": 1}])
def test_load_non_string(spec):
    with pytest.raises(ModelSpecError, match="model spec is a string"):
        lamina.load(spec)


@pytest.mark.parametrize("texts,pattern", [
    ([None], r"item 0 is None"),
    (["ok", 5], r"item 1 is 5"),
    ([""], r"empty text"),
    ([], r"empty text"),
    (7, r"a string or a list of strings"),
])
def test_capture_bad_texts(llama, texts, pattern):
    with pytest.raises(InputError, match=pattern):
        llama.capture(texts, ["resid_post.0"])


@pytest.mark.parametrize("ids,pattern", [
    ([[5, 10**6]], r"token id 1000000 is outside the vocabulary"),
    ([[-1, 5]], r"token id -1 is outside the vocabulary"),
    ([[0.5, 1.0]], r"integer tensor"),
])
def test_capture_bad_token_ids(llama, ids, pattern):
    with pytest.raises(InputError, match=pattern):
        llama.capture({"input_ids": torch.tensor(ids)}, ["resid_post.0"])


def test_site_not_captured(llama):
    acts = llama.capture(["Hello world"], ["resid_post.0"])
    with pytest.raises(NotCapturedError, match=r"'mlp_post.0' was not captured; these were: resid_post.0"):
        acts["mlp_post.0"]
    with pytest.raises(KeyError):  # still a KeyError for code that expects one
        acts["mlp_post.0"]
    assert issubclass(NotCapturedError, LaminaError) and issubclass(NotCapturedError, SiteError)
    assert acts.get("mlp_post.0") is None  # dict.get keeps its meaning


def test_verify_accepts_a_spec_and_refuses_other_things():
    assert lamina.verify("random:llama")["ok"] is True
    with pytest.raises(ModelSpecError, match="expected a model loaded with lamina.load"):
        lamina.verify(123)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(batch_size=0), r"^batch_size must be at least 1"),
    (dict(batch_size=-3), r"^batch_size must be at least 1"),
    (dict(batch_size=2.5), r"^batch_size must be an integer"),
    (dict(context=1), r"^context must be at least 2"),
    (dict(stride=0), r"^stride must be between 1 and 32"),
    (dict(stride=64), r"^stride must be between 1 and 32"),
    (dict(max_tokens=-1), r"^max_tokens must be at least 0"),
    (dict(workers=0), r"^workers must be at least 1"),
    (dict(worker=3, workers=2), r"^worker must be in 0..1"),
    (dict(windows_per_shard=0), r"^windows_per_shard must be at least 1"),
])
def test_extract_arguments(llama, tmp_path, kwargs, pattern):
    kwargs = {"context": 32, **kwargs}
    with pytest.raises(InputError, match=pattern):
        extract(llama, load_corpus(max_docs=2), SITES, tmp_path / "s", progress=False, **kwargs)
    assert not (tmp_path / "s").exists()


def test_library_arguments_named_as_in_python(llama):
    docs = load_corpus(max_docs=2)
    with pytest.raises(InputError, match=r"^batch_size must be at least 1"):
        lamina.profile(llama, docs, batch_size=0, progress=False)
    with pytest.raises(InputError, match=r"^k must be at least 1"):
        lamina.logit_lens(llama, ["Hi there"], k=0)
    with pytest.raises(InputError, match=r"^alpha must be a number strictly between 0 and 1"):
        lamina.tune(llama, None, alpha=2)
    with pytest.raises(InputError, match=r"^lr must be a finite number > 0"):
        lamina.maximize(llama, "mlp_post.0:1", lr=0, progress=False)


# ---- store faults ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docs():
    return load_corpus(max_docs=3)


def make_store(lm, docs, folder: Path) -> ActivationStore:
    return extract(lm, docs, SITES, folder, context=32, batch_size=4, dtype="float32", max_tokens=400,
                   windows_per_shard=4, progress=False)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def bad_sidecar(path: Path) -> None:
    path.with_suffix(".json").write_text("{not json")


def incomplete_sidecar(path: Path) -> None:
    path.with_suffix(".json").write_text(json.dumps({"index": 1}))


FAULTS = [
    (flip_byte, r"shard-00001.safetensors: checksum mismatch"),
    (truncate, r"shard-00001.safetensors: \d+ bytes, expected \d+"),
    (Path.unlink, r"shard-00001.safetensors: missing"),
    (bad_sidecar, r"shard-00001.json"),
    (incomplete_sidecar, r"shard-00001.json"),
]


@pytest.mark.parametrize("fault,pattern", FAULTS, ids=[f.__name__ for f, _ in FAULTS])
def test_store_fault_detected_and_resumed(llama, docs, tmp_path, fault, pattern):
    clean = make_store(llama, docs, tmp_path / "clean")
    folder = tmp_path / "s"
    make_store(llama, docs, folder)
    fault(folder / "shard-00001.safetensors")
    store = ActivationStore(folder)
    # read: a StoreError naming the shard and the fix, never a wrong value or a raw safetensors error
    with pytest.raises(StoreError, match=pattern + r".*--resume"):
        store.read("resid_post.1")
    # store check: exit 1 naming the shard (no crash on a bad sidecar)
    result = run_cli(["store", "check", str(folder)])
    assert result.exit_code == 1 and re.search(pattern, result.stderr), result.stderr
    assert "Traceback" not in result.output + result.stderr
    # extract without --resume does not call the store complete
    with pytest.raises(LaminaError, match="--resume"):
        make_store(llama, docs, folder)
    # --resume redoes the bad shard: the store equals a clean one
    resumed = extract(llama, docs, SITES, folder, context=32, batch_size=4, dtype="float32", max_tokens=400,
                      windows_per_shard=4, resume=True, progress=False)
    assert resumed.check() == [] and resumed.complete
    for site in SITES:
        assert torch.equal(resumed.read(site), clean.read(site))


def test_checked_once_per_file_state(llama, docs, tmp_path, monkeypatch):
    """The checksum runs on a shard's first read in a process, again only when the file changed."""
    import lamina.store.shards as shards

    folder = tmp_path / "s"
    make_store(llama, docs, folder)
    shards._verified.clear()
    calls = []
    real = shards.sha256_file
    monkeypatch.setattr(shards, "sha256_file", lambda p: calls.append(Path(p).name) or real(p))
    store = ActivationStore(folder)
    n = len(store.shards)
    store.read("resid_post.1")
    store.read("mlp_post.2")
    assert len(calls) == n
    flip_byte(folder / "shard-00000.safetensors")
    with pytest.raises(StoreError, match="shard-00000.safetensors: checksum mismatch"):
        store.read("resid_post.1")


@pytest.mark.parametrize("neurons,pattern", [
    ([5, 100000], r"neuron index 100000 is out of range for mlp_post.2, which has 512 values"),
    ([-1], r"neuron index -1 is out of range"),
    (["a"], r"list of integer column indices"),
])
def test_store_read_bad_neurons(llama, docs, tmp_path, neurons, pattern):
    store = make_store(llama, docs, tmp_path / "s")
    with pytest.raises(InputError, match=pattern):
        store.read("mlp_post.2", neurons)


def test_store_other_misuse(llama, docs, tmp_path):
    store = make_store(llama, docs, tmp_path / "s")
    with pytest.raises(SiteError, match="not in this store"):
        store.read("mlp_post.3")
    with pytest.raises(InputError, match="not an activation store"):
        ActivationStore(tmp_path)
    assert_one_line(run_cli(["store", "check", str(tmp_path / "none")]), 2, "none does not exist")
    assert_one_line(run_cli(["store", "check", str(tmp_path)]), 2, "not an activation store")
    (tmp_path / "s" / "manifest.json").write_text("{")
    assert_one_line(run_cli(["store", "info", str(tmp_path / "s")]), 2, "corrupted")


def test_concurrent_writer_refused(llama, docs, tmp_path):
    folder = tmp_path / "s"
    with StoreLock(folder):  # a live writer: this process
        with pytest.raises(StoreError, match=rf"being written by pid {os.getpid()} on {socket.gethostname()}"):
            make_store(llama, docs, folder)
        result = run_cli(["extract", "--model", "random:llama", "--sites", "resid_post.1", "--out", str(folder),
                          "--max-tokens", "64", "--context", "32"])
        assert_one_line(result, 2, "being written by pid")
    assert not lock_path(folder, "writer").exists()
    assert make_store(llama, docs, folder).complete  # released: the next writer goes ahead


def test_worker_locks(tmp_path):
    """Workers of one store lock their own share; a whole-store writer conflicts with each of them."""
    with StoreLock(tmp_path, "worker-0-of-2"), StoreLock(tmp_path, "worker-1-of-2"):
        with pytest.raises(StoreError, match="being written"):
            StoreLock(tmp_path, "worker-0-of-2").acquire()
        with pytest.raises(StoreError, match="being written"):
            StoreLock(tmp_path).acquire()
    with StoreLock(tmp_path):
        with pytest.raises(StoreError, match="being written"):
            StoreLock(tmp_path, "worker-1-of-2").acquire()


def test_stale_lock_taken_over_and_other_host_refused(llama, docs, tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"pid": int(dead.stdout), "host": socket.gethostname(), "started": time.time(), "owner": "writer"}
    lock_path(folder, "writer").write_text(json.dumps(record))
    assert make_store(llama, docs, folder).complete  # the dead process's lock was taken over
    assert not lock_path(folder, "writer").exists()
    lock_path(folder, "writer").write_text(json.dumps({**record, "pid": os.getpid(), "host": "elsewhere"}))
    with pytest.raises(StoreError, match="being written by pid .* on elsewhere"):
        make_store(llama, docs, folder)



def test_lock_of_a_reused_pid_is_stale(tmp_path):
    """A lock whose pid now names a live process started after the lock's writer (pid reuse) is stale; the
    same pid with its own start time is live. The start time comes from /proc (field 22 of /proc/PID/stat)."""
    from lamina.store.lock import is_stale, process_start

    start = process_start(os.getpid())
    if start is None:
        pytest.skip("/proc/PID/stat is not readable here")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        boot = float(Path("/proc/stat").read_text().split("btime ")[1].split()[0])
        child_start = process_start(child.pid)
        assert child_start >= start                                   # started after this process
        assert abs(boot + child_start / os.sysconf("SC_CLK_TCK") - time.time()) < 5  # and just now
    finally:
        child.kill()
        child.wait()
    record = {"pid": os.getpid(), "pid_start": start, "host": socket.gethostname(), "started": time.time(),
              "owner": "writer"}
    path = lock_path(tmp_path, "writer")
    path.write_text(json.dumps(record))
    assert not is_stale(path)                                    # this very process: live
    path.write_text(json.dumps({**record, "pid_start": start - 1}))
    assert is_stale(path)                                        # same pid, another process: stale
    path.write_text(json.dumps({**record, "pid_start": None}))
    assert not is_stale(path)                                    # no start recorded: the pid alone decides


# ---- disk full -------------------------------------------------------------------------------------------
@pytest.fixture()
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)])


def test_disk_full_before_start(small_disk, workdir):
    assert_one_line(run_cli(["profile", "--out", str(small_disk / "p")]), 2, r"disk full")
    assert nothing_written(small_disk)


def test_disk_full_while_extracting(small_disk, llama, docs, monkeypatch):
    import lamina.report.output as output

    monkeypatch.setattr(output, "MIN_FREE_BYTES", 0)  # let it start, so the disk fills mid-run
    folder = small_disk / "s"
    with pytest.raises(StoreError, match=r"disk full while writing shard \d+ .*free space and rerun with --resume"):
        extract(llama, docs, ["resid_post", "mlp_post"], folder, context=32, dtype="float32", max_tokens=1200,
                windows_per_shard=4, progress=False)
    store = ActivationStore(folder)
    assert not list(folder.glob("*.tmp*")) and store.check() == []  # only whole shards, all sound
    assert 0 < len(store.shards) < store.manifest["n_shards"]  # the disk filled mid-run


def test_disk_full_while_writing_results(small_disk, monkeypatch):
    import lamina.report.output as output

    monkeypatch.setattr(output, "MIN_FREE_BYTES", 0)
    out = small_disk / "r"
    out.mkdir()
    (out / "old.json").write_text("old")
    with pytest.raises(InputError, match=r"disk full while writing results .* nothing was changed there"):
        with atomic_output(out) as tmp:
            (tmp / "big.bin").write_bytes(b"x" * 4_000_000)
    assert [p.name for p in out.iterdir()] == ["old.json"] and [p.name for p in small_disk.iterdir()] == ["r"]


def test_out_holding_other_files_is_written_beside_them(tmp_path, monkeypatch):
    """`--out .` or a folder of another analysis: new files go beside the others, which stay untouched."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "verify").mkdir()
    (tmp_path / "verify" / "verify.json").write_text("{}")
    with atomic_output(".") as tmp:
        (tmp / "profile.json").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "profile.json", "verify"]
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "verify" / "verify.json").exists()


# ---- long inputs -----------------------------------------------------------------------------------------
def test_logit_lens_chunks_equal_one_pass(llama):
    """The vocabulary projection read a few positions at a time gives the table of one pass over all of them."""
    import pandas as pd

    texts = ["The cat sat on the mat and looked at the door for a long time. " * 6, "Short one."]
    chunked = lamina.logit_lens(llama, texts, k=3, chunk=7, progress=False)
    whole = lamina.logit_lens(llama, texts, k=3, chunk=10_000, progress=False)
    assert len(whole.table) == 4 * sum(len(llama.tokenizer(t)["input_ids"]) for t in texts)
    pd.testing.assert_frame_equal(chunked.table, whole.table, check_exact=False, rtol=1e-4, atol=1e-5)  # float32 BLAS by block size
    assert chunked.last_layer_max_abs_diff <= 1e-4


# ---- the causal verbs on the output rule ------------------------------------------------------------------
CAUSAL_COMMANDS = [
    ["ablate", "--model", "random:llama", "--site", "mlp_post.0"],
    ["patch", "--model", "random:llama", "--clean", "The cat", "--corrupt", "The dog"],
    ["steer", "--model", "random:llama", "--neuron", "mlp_post.0:1"],
]


@pytest.mark.parametrize("args", CAUSAL_COMMANDS, ids=[a[0] for a in CAUSAL_COMMANDS])
def test_causal_out_is_checked_before_any_work(workdir, args, monkeypatch):
    """`ablate --out FILE` used to compute everything and then raise FileExistsError."""
    monkeypatch.setattr(lamina, "load", lambda *a, **k: pytest.fail("loaded a model before checking --out"))
    (workdir / "taken").write_text("not a folder")
    assert_one_line(run_cli(args + ["--out", "taken"]), 2, r"taken is a file")
    assert (workdir / "taken").read_text() == "not a folder" and nothing_written(workdir, {"taken"})


def test_causal_json_writes_null_for_undefined_numbers(workdir):
    """One document: the bootstrap interval over documents is undefined, and result.json says null (strict
    JSON), where the causal verbs' own writer used to write NaN."""
    (workdir / "one.txt").write_text("The cat sat on the mat and looked at the door for a long time.\n")
    result = run_cli(["ablate", "--model", "random:llama", "--site", "mlp_post.1", "--neurons", "0-3", "--corpus",
                      "one.txt", "--max-tokens", "64", "--out", "ablate"])
    assert result.exit_code == 0, result.output
    text = (workdir / "ablate" / "result.json").read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(name):
        raise AssertionError(f"{name} in result.json")

    data = json.loads(text, parse_constant=refuse)
    assert data["n_docs"] == 1 and data["delta_loss"]["low"] is None and data["delta_loss"]["high"] is None
    assert data["delta_loss"]["value"] == pytest.approx(data["ablated"]["loss"] - data["baseline"]["loss"], abs=1e-9)
    assert sorted(p.name for p in (workdir / "ablate").iterdir()) == ["per_doc.csv", "result.json"]
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []   # no temporary folder left
