"""The activation store: values equal a direct capture, resume after kill -9, refusal to mix, checksums."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import lamina
from lamina.data.corpus import load_corpus
from lamina.data.windows import corpus_windows
from lamina.errors import InputError
from lamina.extract import extract

SITES = ["resid_post.1", "mlp_post.2", "q.3"]


@pytest.fixture(scope="module")
def lm():
    return lamina.load("random:llama")


@pytest.fixture(scope="module")
def docs():
    return load_corpus(max_docs=4)


def test_store_equals_direct_capture(lm, docs, tmp_path):
    store = extract(lm, docs, SITES, tmp_path / "s", context=32, batch_size=4, dtype="float32",
                    max_tokens=600, windows_per_shard=4, progress=False)
    assert store.complete and len(store.shards) > 1 and store.check() == []
    windows = corpus_windows(lm, docs, 32, max_tokens=600)
    direct = lm.capture({"input_ids": torch.tensor([windows[5].ids])}, SITES)
    tokens = store.tokens()
    rows = tokens.index[(tokens["doc"] == windows[5].doc) & (tokens["position"] >= windows[5].start)][:32]
    for site in SITES:
        assert torch.equal(store.read(site)[rows], direct[site][0].flatten(1))
    assert store.read("mlp_post.2", [3, 7]).shape == (len(tokens), 2)  # two neurons only
    assert tokens["token_id"].tolist()[:32] == windows[0].ids


def test_refuses_to_mix_settings(lm, docs, tmp_path):
    extract(lm, docs, SITES, tmp_path / "s", context=32, max_tokens=200, progress=False)
    with pytest.raises(InputError, match=r"context: 32 \(stored\) vs 64 \(now\)"):
        extract(lm, docs, SITES, tmp_path / "s", context=64, max_tokens=200, progress=False)
    with pytest.raises(InputError, match="storage_dtype"):
        extract(lm, docs, SITES, tmp_path / "s", context=32, max_tokens=200, dtype="float32", progress=False)


def test_checksum_names_corrupted_shard(lm, docs, tmp_path):
    store = extract(lm, docs, SITES, tmp_path / "s", context=32, max_tokens=400, windows_per_shard=4, progress=False)
    victim = sorted((tmp_path / "s").glob("shard-*.safetensors"))[1]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert store.check() == [f"{victim.name}: checksum mismatch (corrupted)"]


# The child paces itself (0.25 s before each shard) so that however fast the machine, the kill lands
# while shards remain to be written.
KILL_SCRIPT = """
import sys, time, lamina
import lamina.extract
from lamina.data.corpus import load_corpus
from lamina.extract import extract
write_shard = lamina.extract.write_shard
def paced_write_shard(*args, **kwargs):
    time.sleep(0.25)
    return write_shard(*args, **kwargs)
lamina.extract.write_shard = paced_write_shard
lm = lamina.load("random:llama")
extract(lm, load_corpus(max_docs=4), {sites!r}, sys.argv[1], context=32, batch_size=3, dtype="float32",
        max_tokens=1500, windows_per_shard=3, resume=True, progress=False)
"""


def test_resume_after_kill_9(lm, docs, tmp_path):
    folder = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(sites=SITES), str(folder)])
    deadline = time.time() + 300  # a loaded machine can take minutes to start the child
    while time.time() < deadline and len(list(folder.glob("shard-*.json"))) < 3 and child.poll() is None:
        time.sleep(0.05)
    time.sleep(0.13)  # land the kill at an arbitrary point inside a later shard
    child.send_signal(signal.SIGKILL)
    child.wait()
    partial = len(list(folder.glob("shard-*.json")))
    resumed = extract(lm, docs, SITES, folder, context=32, batch_size=3, dtype="float32", max_tokens=1500,
                      windows_per_shard=3, resume=True, progress=False)
    clean = extract(lm, docs, SITES, tmp_path / "clean", context=32, batch_size=3, dtype="float32",
                    max_tokens=1500, windows_per_shard=3, progress=False)
    assert 0 < partial < clean.manifest["n_shards"]
    rows = resumed.tokens()
    assert not rows.duplicated(["doc", "position"]).any()
    assert rows.equals(clean.tokens())
    for site in SITES:
        assert torch.allclose(resumed.read(site), clean.read(site), atol=1e-5)
    assert resumed.check() == []


def test_existing_store_needs_resume(lm, docs, tmp_path):
    folder = tmp_path / "s"
    extract(lm, docs, SITES, folder, context=32, max_tokens=400, windows_per_shard=4, progress=False)
    os.remove(sorted(folder.glob("shard-*.json"))[-1])  # as if the last shard never finished
    with pytest.raises(InputError, match="--resume"):
        extract(lm, docs, SITES, folder, context=32, max_tokens=400, windows_per_shard=4, progress=False)
    store = extract(lm, docs, SITES, folder, context=32, max_tokens=400, windows_per_shard=4, resume=True,
                    progress=False)
    assert store.complete and store.check() == []
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["settings"]["sites"] == SITES
