"""`lamina extract --ray` on a real local Ray cluster (127.0.0.1, 2 CPUs, no dashboard), no mocks.

The store a Ray actor pool writes equals the single-process store (rows, token ids, bitwise float32 values,
manifest key); an actor killed mid-run is restarted and its shard retried; a driver killed mid-run leaves
a store that `--resume` finishes; bad input gets one line and exit status 2 with nothing written.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

pytest.importorskip("ray", reason="the Ray tests need pip install 'lamina[ray]'")

import ray  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import lamina  # noqa: E402
from lamina.cli import app  # noqa: E402
from lamina.data.corpus import load_corpus  # noqa: E402
from lamina.errors import InputError, LaminaError, RayJobError, StoreError  # noqa: E402
from lamina.extract import extract  # noqa: E402
from lamina.ray_jobs import RayExecutor, RaySettings, job_error, lamina_cause  # noqa: E402

# random:gpt2 read at its last block runs the whole stack: slow enough per shard for a kill to land mid-run.
GPT2 = dict(sites=["resid_post.11", "mlp_post.3"], context=64, batch_size=4, dtype="float32", max_tokens=2400,
            windows_per_shard=2)


@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=300 * 2**20,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def docs():
    return load_corpus(max_docs=8)


@pytest.fixture(scope="module")
def gpt2():
    return lamina.load("random:gpt2")


@pytest.fixture(scope="module")
def reference(gpt2, docs, tmp_path_factory):
    """The single-process store of the GPT2 settings."""
    return extract(gpt2, docs, out=tmp_path_factory.mktemp("ref") / "store", progress=False, **GPT2)


def assert_same_store(got, want):
    assert got.complete and got.check() == []
    assert got.manifest == want.manifest  # key, settings, shard count, windows, documents
    assert got.tokens().equals(want.tokens())
    ids = got.tokens()[["doc", "position"]]
    assert not ids.duplicated().any()  # no row twice
    for site in want.sites:
        assert got.read(site).dtype == torch.float32
        assert torch.equal(got.read(site), want.read(site)), site  # bitwise
    for index, info in want.shards.items():
        assert got.shards[index]["windows"] == info["windows"] and got.shards[index]["sha256"] == info["sha256"]


def test_ray_store_equals_single_process_llama(cluster, docs, tmp_path):
    llama = lamina.load("random:llama")
    kw = dict(sites=["resid_post.1", "mlp_post.2", "q.3"], context=32, batch_size=4, dtype="float32",
              max_tokens=1200, windows_per_shard=3, progress=False)
    want = extract(llama, docs, out=tmp_path / "single", **kw)
    got = extract(llama, docs, out=tmp_path / "ray", executor=RayExecutor(RaySettings(actors=2)), **kw)
    assert len(want.shards) > 4
    assert_same_store(got, want)


@pytest.mark.slow  # about 50 s on 2 busy cores (a second actor pool starting)
def test_ray_profile_equals_single_process(cluster, docs):
    """Each actor reduces its rows into LayerStats; the driver merges their state_dicts: the same profile."""
    from lamina.analyses.profile.laminar import profile

    llama = lamina.load("random:llama")
    kw = {"kind": "resid_post", "context": 32, "batch_size": 4, "max_tokens": 1500, "progress": False}
    want = profile(llama, docs, **kw)
    got = profile(llama, docs, executor=RayExecutor(RaySettings(actors=2)), **kw)
    assert got.settings == want.settings
    t, w = got.table, want.table
    assert w["n_tokens"].iloc[0] > 1000 and t["n_tokens"].tolist() == w["n_tokens"].tolist()
    # Under the sample cap the median's sample is every value: exact. Top values and maxima are exact.
    assert w["n_tokens"].iloc[0] * llama.anatomy.d_model < 2 * (1 << 17)
    for column in ("median_abs", "top1_abs", "top2_abs", "top3_abs", "layer"):
        assert t[column].tolist() == w[column].tolist(), column
    # Moments: each batch's sums are float32 (layer_stats), whose rounding depends on the thread count of the
    # reduction (an actor has 1 thread, this process 2); merged in float64.
    for column in ("mean_token_norm", "mean", "std", "skew", "kurtosis", "frac_positive"):
        np.testing.assert_allclose(t[column], w[column], rtol=1e-5, err_msg=column)
    np.testing.assert_array_equal(got.dim_max_abs, want.dim_max_abs)
    assert got.massive.equals(want.massive)


def actor_pids() -> list[int]:
    """Processes of this machine running a ShardWriter actor (Ray names them after the class)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"ShardWriter" in f.read():
                    found.append(int(pid))
        except (OSError, ValueError):
            continue
    return found


def wait_for(condition, timeout: float = 120.0, every: float = 0.05):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


@pytest.mark.slow  # about a minute on 2 busy cores (the random:gpt2 reference, two actors loading it)
def test_killed_actor_is_retried(cluster, gpt2, docs, reference, tmp_path):
    """os.kill of an actor mid-run: Ray restarts it and retries its shard; the store equals the reference."""
    folder = tmp_path / "ray"
    result = {}

    def run():
        try:
            result["store"] = extract(gpt2, docs, out=folder, progress=False,
                                      executor=RayExecutor(RaySettings(actors=2)), **GPT2)
        except BaseException as err:  # noqa: BLE001  (re-raised in the test's thread)
            result["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: list(folder.glob("shard-*.json")) and actor_pids())
    written = len(list(folder.glob("shard-*.json")))
    victim = actor_pids()[0]
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert written < reference.manifest["n_shards"]  # the kill landed while shards remained
    assert victim not in actor_pids()
    assert_same_store(result["store"], reference)


@pytest.mark.slow  # about 1.5 minutes on 2 busy cores
def test_killed_driver_then_resume(cluster, gpt2, docs, reference, tmp_path):
    """The CLI's driver killed mid-run (kill -9): `--resume` on Ray finishes the store, equal to the reference."""
    folder = tmp_path / "store"
    cli = ["extract", "--model", "random:gpt2", "--sites", ",".join(GPT2["sites"]), "--context", "64",
           "--batch-size", "4", "--store-dtype", "float32", "--max-tokens", str(GPT2["max_tokens"]), "--max-docs", "8",
           "--windows-per-shard", "2", "--out", str(folder), "--ray", cluster]
    child = subprocess.Popen([sys.executable, "-m", "lamina.cli", *cli], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        wait_for(lambda: child.poll() is not None or len(list(folder.glob("shard-*.json"))) >= 1, timeout=180)
        assert child.poll() is None, child.stdout.read().decode()[-2000:]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    written = len(list(folder.glob("shard-*.json")))
    assert 1 <= written < reference.manifest["n_shards"]
    with pytest.raises(InputError, match="pass --resume"):
        extract(gpt2, docs, out=folder, progress=False, executor=RayExecutor(RaySettings(actors=1)), **GPT2)
    store = extract(gpt2, docs, out=folder, resume=True, progress=False,
                    executor=RayExecutor(RaySettings(actors=2)), **GPT2)
    assert_same_store(store, reference)
    assert not list(folder.glob("*.tmp*")) and not list(folder.glob(".lock-*"))


runner = CliRunner()


def one_line(result, pattern: str) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in result.output + err
    assert result.exit_code == 2, (result.exit_code, err)
    assert len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err
    return err


EXTRACT = ["extract", "--model", "random:llama", "--sites", "resid_post.1", "--context", "32", "--max-tokens", "200"]


def test_more_gpus_than_the_cluster_has(cluster, tmp_path):
    result = runner.invoke(app, EXTRACT + ["--out", str(tmp_path / "s"), "--ray", "auto", "--gpus-per-actor", "1"])
    one_line(result, r"needs 1 GPUs but the Ray cluster has 0; ask for fewer")
    assert not (tmp_path / "s").exists()
    result = runner.invoke(app, EXTRACT + ["--out", str(tmp_path / "s"), "--ray", "auto", "--actors", "3"])
    one_line(result, r"needs 3 CPUs but the Ray cluster has 2")
    assert not (tmp_path / "s").exists()


def test_unreachable_address_fails_fast(cluster, tmp_path, monkeypatch):
    """Refused by one TCP probe with a bounded timeout, before ray.init (which retries for a minute or more)."""
    from lamina import ray_jobs

    probes, inits = [], []
    real_connect, real_init = ray_jobs.socket.create_connection, ray.init
    monkeypatch.setattr(ray_jobs.socket, "create_connection",
                        lambda address, timeout=None, *a, **k: probes.append((address, timeout))
                        or real_connect(address, timeout, *a, **k))
    monkeypatch.setattr(ray, "init", lambda *a, **k: inits.append(k) or real_init(*a, **k))
    result = runner.invoke(app, EXTRACT + ["--out", str(tmp_path / "s"), "--ray", "127.0.0.1:1"])
    one_line(result, r"no Ray cluster answers at 127\.0\.0\.1:1 .*ray start --head")
    assert probes == [(("127.0.0.1", 1), ray_jobs.CONNECT_TIMEOUT_S)] and inits == []
    assert not (tmp_path / "s").exists()


def test_unwritable_output_folder(cluster, tmp_path):
    one_line(runner.invoke(app, EXTRACT + ["--out", "/proc/lamina-x", "--ray", "auto"]), r"not writable")


def test_profile_of_a_store_is_not_sent_to_ray(tmp_path):
    result = runner.invoke(app, ["profile", "--store", str(tmp_path), "--ray", "auto", "--out", str(tmp_path / "p")])
    one_line(result, r"--store reads the store in this process: drop --ray")


def test_an_actor_error_comes_back_as_one_line(cluster, tmp_path):
    """An actor that cannot write the store (a node without the shared folder) fails the job with its own
    StoreError, not Ray's traceback; nothing is written."""
    from lamina.extract import ExtractSettings, open_store, plan_store

    llama = lamina.load("random:llama")
    plan = plan_store(llama, load_corpus(max_docs=2), ExtractSettings(sites=("resid_post.1",), context=32,
                                                                      max_tokens=200), tmp_path / "s")
    todo = open_store(plan, resume=False)
    for path in plan.folder.iterdir():
        path.unlink()
    plan.folder.rmdir()  # as seen from a node that does not mount it
    with pytest.raises(StoreError, match=r"^a Ray node on .* cannot write .*every node mounts"):
        RayExecutor(RaySettings(actors=1)).fill(llama, plan, todo, progress=False)
    assert not plan.folder.exists()

    @ray.remote
    def fails():
        raise StoreError("shard 3 is corrupted")

    with pytest.raises(Exception) as caught:
        ray.get(fails.remote())
    cause = lamina_cause(caught.value)
    assert type(cause) is StoreError and str(cause) == "shard 3 is corrupted"


def test_a_failed_job_says_what_failed(cluster):
    """Only an actor's own LaminaError comes back as that error (StoreError stays StoreError, from Ray Data's
    text of it); a bug in an actor's code keeps Ray's traceback (not a one-line user error); Ray's own failure
    (an actor whose process died) is a RayJobError naming Ray's error, never a StoreError."""

    class RaisesStoreError:
        def __init__(self, device):
            pass

        def __call__(self, batch):
            raise StoreError("shard 3 is corrupted")

    class HasABug:
        def __init__(self, device):
            pass

        def __call__(self, batch):
            return {}["missing"]

    def run(actor):
        return list(RayExecutor(RaySettings(actors=1))._run(actor, {}, [{"index": 0}], "test", False, "rerun it"))

    with pytest.raises(StoreError, match=r"^shard 3 is corrupted$"):
        run(RaisesStoreError)
    with pytest.raises(ray.exceptions.RayError, match=r"KeyError: 'missing'") as caught:
        run(HasABug)
    assert not isinstance(caught.value, LaminaError) and lamina_cause(caught.value) is None

    @ray.remote
    class Replica:
        def crash(self):
            os._exit(1)  # the worker process dies mid-call, as on a node that runs out of memory

    with pytest.raises(ray.exceptions.ActorDiedError) as died:
        ray.get(Replica.remote().crash.remote())
    error = job_error(died.value, "rerun with --resume")
    assert type(error) is RayJobError
    assert re.fullmatch(r"the Ray job failed \(ActorDiedError: .*\); rerun with --resume", str(error))


NO_RAY = """
import sys
sys.modules["ray"] = None  # as if Ray were not installed
from lamina.cli import main
sys.argv = ["lamina"] + sys.argv[1:]
main()
"""


def test_without_ray_one_line_says_how_to_install(tmp_path):
    out = tmp_path / "s"
    done = subprocess.run([sys.executable, "-c", NO_RAY, *EXTRACT, "--out", str(out), "--ray", "auto"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err
    assert "pip install 'lamina[ray]'" in err and "Traceback" not in err
    assert not out.exists()


def test_import_lamina_does_not_import_ray():
    code = "import sys, lamina, lamina.extract, lamina.cli; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.stdout.strip() == "False", done.stderr
