"""Corpus-scale jobs on a Ray cluster: the same shard plan, files and manifest as a single process.

    driver: tokenize, fix the shard plan, hold the store's whole lock, write the manifest
        │  rows of a Ray Dataset = the shards still to fill (index + that shard's windows' token ids)
        ▼
    Ray Data map_batches over an actor pool (--actors N, --cpus-per-actor, --gpus-per-actor):
        each actor loads the model by spec once, captures a shard's windows and writes the shard and its
        checksum sidecar straight into the store folder (a filesystem every node mounts)
        │  back to the driver: one small row per shard (index, rows, sha256)
        ▼
    driver: checks that every planned shard came back exactly once

Only token ids travel to the actors and only sidecars travel back: activations go from an actor to the
disk once. A shard is written atomically (`store/shards.write_shard`), so an actor killed mid-shard leaves
nothing that counts; Ray Data restarts the actor and retries the shard, which covers the same windows.
The driver holds the store's lock for the whole job: actors write under it, as `--worker` processes write
under theirs. Ray is imported only here, and only when a job asks for it (`pip install 'lamina[ray]'`).
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lamina import errors, validate
from lamina.errors import InputError, LaminaError, MissingExtraError, RayJobError, StoreError

CONNECT_TIMEOUT_S = 5.0   # an address that does not answer within this fails at once, in one line
DEFAULT_PORTS = {"ray": 10001, "": 6379}  # Ray Client (ray://host) and the GCS (host)


def require_ray():
    """The `ray` module, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the pipeline needs Ray Data, not only Ray Core)
    except ImportError:
        raise MissingExtraError("--ray needs Ray (with Ray Data), which is not installed: "
                                "pip install 'lamina[ray]'") from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse at once an address nothing answers on (ray.init would retry for a minute or more)."""
    scheme, _, rest = address.rpartition("://")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    try:
        port = int(port) if port else DEFAULT_PORTS.get(scheme, 6379)
        socket.create_connection((host, port), timeout=timeout).close()
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise InputError(f"no Ray cluster answers at {address} ({reason}); start one with `ray start --head` "
                         "or pass --ray auto for a local one") from None


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide a Ray job runs."""
    address: str = "auto"       # auto: a running cluster if there is one, else a local one; or HOST:PORT, ray://...
    actors: int = 1             # model replicas in the actor pool
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "actors", validate.integer("actors", self.actors))
        for name in ("cpus_per_actor", "gpus_per_actor"):
            value = float(getattr(self, name))
            if not value >= 0 or (name == "cpus_per_actor" and value == 0 and self.gpus_per_actor == 0):
                raise InputError(f"--{name.replace('_', '-')} must be a number >= 0 (CPUs > 0 without GPUs), "
                                 f"not {getattr(self, name)}")
            object.__setattr__(self, name, value)


def connect(settings: RaySettings) -> bool:
    """Connect to (or start) the cluster; True when this call started Ray (and should shut it down)."""
    ray = require_ray()
    if settings.address not in ("auto", "local"):
        check_reachable(settings.address)
    if ray.is_initialized():  # a notebook's or a test's own connection: use it as it is
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's own notices (token authentication) are not the user's business on stderr; failures still reach the
    # user as exceptions, turned into one line by the CLI.
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "error"}
    local = {"address": "local", "num_cpus": max(1, int(np.ceil(settings.actors * settings.cpus_per_actor))), **quiet}
    if settings.address == "local":
        ray.init(**local)
    elif settings.address == "auto":
        try:
            ray.init(address="auto", **quiet)
        except ConnectionError:  # no running cluster: start one here, as wide as the job
            ray.init(**local)
    else:
        try:
            ray.init(address=settings.address, **quiet)
        except (ConnectionError, RuntimeError) as err:
            raise InputError(f"cannot join the Ray cluster at {settings.address}: {str(err).splitlines()[0]}") from None
    return True


def check_resources(ray, settings: RaySettings) -> None:
    """Refuse a pool the cluster cannot place (it would wait forever), before anything is written."""
    have = ray.cluster_resources()
    for name, per in (("GPU", settings.gpus_per_actor), ("CPU", settings.cpus_per_actor)):
        need = per * settings.actors
        if need > have.get(name, 0.0):
            raise InputError(f"--actors {settings.actors} x --{name.lower()}s-per-actor {per:g} needs {need:g} "
                             f"{name}s but the Ray cluster has {have.get(name, 0.0):g}; ask for fewer")


def _chain(err: BaseException, context: bool = True):
    """`err` and every exception it wraps (Ray's `cause`, __cause__, exceptions in args, and with `context` what
    it was raised while handling), once each."""
    todo, seen = [err], set()
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__ if context else None]
        todo += [a for a in e.args if isinstance(a, BaseException)]


ERROR_LINE = re.compile(r"^lamina\.errors\.(\w+): (.*)$", re.M)  # how a traceback's text names a LaminaError


def lamina_cause(err: BaseException) -> LaminaError | None:
    """The LaminaError an actor raised, rebuilt from Ray's wrappers (ActorDiedError, RayTaskError(StoreError):
    a class made on the fly whose text is the actor's traceback, ending in `lamina.errors.StoreError: ...`).
    Ray Data keeps only the text of an error raised in an actor's __call__ (a RayTaskError(UserCodeException)
    whose traceback names it): the last `lamina.errors.X: message` line there."""
    for e in _chain(err):
        kinds = [c for c in type(e).__mro__ if issubclass(c, LaminaError) and c.__module__ == LaminaError.__module__]
        if kinds:
            lines = str(e).strip().splitlines() or [""]
            return kinds[0](lines[-1].split(f"{kinds[0].__name__}: ", 1)[-1])
    for e in _chain(err):
        named = [(getattr(errors, m[1], None), m[2]) for m in ERROR_LINE.finditer(str(e))]
        named = [(kind, text) for kind, text in named if isinstance(kind, type) and issubclass(kind, LaminaError)]
        if named:
            return named[-1][0](named[-1][1])
    return None


def raised_by_actor_code(err: BaseException) -> bool:
    """True when the actor's own code raised the error, a bug whose traceback must be seen, not a failure of the
    cluster: Ray Data's UserCodeException, or a RayTaskError made on the fly over a non-Ray type
    (RayTaskError(KeyError))."""
    ray = require_ray()
    generic = (BaseException, Exception, object)
    for e in _chain(err, context=False):  # not the context: Ray raises its own errors while handling StopIteration
        if isinstance(e, ray.exceptions.UserCodeException):
            return True
        if isinstance(e, ray.exceptions.RayTaskError) and any(
                c not in generic and not c.__module__.startswith("ray") for c in type(e).__mro__):
            return True
    return False


def job_error(err: BaseException, on_failure: str) -> BaseException | None:
    """What a failed Ray job raises: the actor's LaminaError as it was; None (re-raise `err`) for any other error
    the actor's code raised; RayJobError, naming Ray's error, when Ray itself failed (an actor or node died)."""
    cause = lamina_cause(err)
    if cause is not None:
        return cause
    if raised_by_actor_code(err):
        return None
    last = (str(err).strip().splitlines() or [""])[-1][:300]
    return RayJobError(f"the Ray job failed ({type(err).__name__}: {last}); {on_failure}")


def windows_row(index: int, first: int, windows) -> dict:
    """One dataset row: a shard's index and its windows as flat arrays (token ids as int32: 4 bytes a token)."""
    return {"index": index, "first_window": first,
            "doc": np.array([w.doc for w in windows], dtype=np.int64),
            "start": np.array([w.start for w in windows], dtype=np.int64),
            "first_counted": np.array([w.first_counted for w in windows], dtype=np.int64),
            "lengths": np.array([len(w.ids) for w in windows], dtype=np.int64),
            "ids": np.concatenate([np.asarray(w.ids, dtype=np.int32) for w in windows])}


def row_windows(row: dict) -> list:
    """The windows of a dataset row (inverse of `windows_row`)."""
    from lamina.data.windows import Window

    ends = np.cumsum(row["lengths"])
    ids = np.asarray(row["ids"]).tolist()
    return [Window(int(d), int(s), ids[e - n:e], int(f))
            for d, s, f, n, e in zip(row["doc"], row["start"], row["first_counted"], row["lengths"], ends)]


def model_identity(lm) -> dict:
    """What an actor needs to load the driver's model, and the versions its values depend on."""
    from lamina.store.manifest import library_versions

    return {"model": lm.spec, "seed": lm.seed, "model_dtype": lm.info.get("dtype"), **library_versions()}


def load_replica(identity: dict, device: str):
    """The model of `identity` on this node, refused where the libraries differ from the driver's."""
    from lamina.models.registry import load
    from lamina.store.manifest import library_versions

    differ = [f"{k} {identity[k]} (driver) vs {v} (here)" for k, v in library_versions().items()
              if identity.get(k) != v]
    if differ:
        raise StoreError(f"a Ray node on {socket.gethostname()} has other library versions than the driver ("
                         + "; ".join(differ) + "): its values would not match the driver's")
    return load(identity["model"], seed=identity["seed"] or 0, dtype=identity["model_dtype"], device=device)


class ShardWriter:
    """A Ray Data actor: one model replica that captures shards and writes them into the store."""

    def __init__(self, identity: dict, settings, widths: dict, folder: str, device: str):
        self.folder, self.settings, self.widths = Path(folder), settings, widths
        if not self.folder.is_dir() or not os.access(self.folder, os.W_OK):
            raise StoreError(f"a Ray node on {socket.gethostname()} cannot write {folder}: the store must be on a "
                             "filesystem every node mounts, writable by the Ray workers")
        self.lm = load_replica(identity, device)

    def __call__(self, batch: dict) -> dict:
        from lamina.extract import write_shard_of

        out = {"index": [], "n_rows": [], "sha256": []}
        for i in range(len(batch["index"])):
            row = {k: v[i] for k, v in batch.items()}
            info = write_shard_of(self.lm, self.folder, self.settings, self.widths, int(row["index"]),
                                  int(row["first_window"]), row_windows(row))
            for key in ("index", "n_rows", "sha256"):
                out[key].append(info[key])
        return {k: np.array(v) for k, v in out.items()}


class ProfileWorker:
    """A Ray Data actor: one model replica that reduces its rows' batches into per-site `LayerStats`."""

    def __init__(self, identity: dict, sites: list[str], settings, device: str):
        self.sites, self.settings = sites, settings
        self.lm = load_replica(identity, device)

    def __call__(self, batch: dict) -> dict:
        from lamina.analyses.profile.laminar import profile_stats
        from lamina.analyses.sources.model import ModelSource

        out = {"index": [], "state": []}
        for i in range(len(batch["index"])):
            row = {k: v[i] for k, v in batch.items()}
            source = ModelSource.from_windows(self.lm, row_windows(row), self.settings.skip_first)
            index = int(row["index"])
            stats = profile_stats(source, self.sites, self.settings.batch_size, progress=False,
                                  seed=index * len(self.sites))
            out["index"].append(index)
            out["state"].append(pickle.dumps([s.state_dict() for s in stats]))  # statistics, never activations
        return {"index": np.array(out["index"]), "state": np.array(out["state"], dtype=object)}


class RayExecutor:
    """Runs a job's rows on a Ray actor pool: `extract(..., executor=RayExecutor(RaySettings(...)))` fills a
    store's shards, `profile(..., executor=...)` reduces the corpus into mergeable statistics."""

    def __init__(self, settings: RaySettings = RaySettings()):
        self.settings = settings
        self.started = False

    def start(self) -> None:
        """Connect and check the cluster can place the pool (called before anything is written)."""
        ray = require_ray()
        self.started = connect(self.settings) or self.started
        try:
            check_resources(ray, self.settings)
        except LaminaError:
            self.close()
            raise

    def close(self) -> None:
        if self.started:
            require_ray().shutdown()
            self.started = False

    def fill(self, lm, plan, todo: list[int], progress: bool = True) -> None:
        """Write the shards in `todo` on the actor pool; every one must come back exactly once."""
        rows = [windows_row(i, i * plan.per_shard, plan.windows_of(i)) for i in todo]
        kwargs = {"identity": model_identity(lm), "settings": plan.settings, "widths": plan.widths,
                  "folder": str(plan.folder.resolve())}
        done = []
        fails = f"the shards written so far are kept in {plan.folder}: rerun with --resume"
        for row in self._run(ShardWriter, kwargs, rows, f"extract on Ray -> {plan.folder.name}", progress, fails):
            done.append(int(row["index"]))
        missing = sorted(set(todo) - set(done))
        if missing:
            raise StoreError(f"the Ray job ended without shard(s) {missing[:5]}; rerun with --resume")

    def profile_stats(self, lm, source, sites: list[str], settings, progress: bool = True) -> list:
        """One merged `LayerStats` per site: each row (a run of whole batches) reduced on an actor, the
        states merged here in row order (so the result does not depend on which actor finished first)."""
        from lamina.analyses.profile.layer_stats import LayerStats

        n_batches = -(-len(source.windows) // settings.batch_size)
        per_row = settings.batch_size * max(1, -(-n_batches // (4 * self.settings.actors)))  # ~4 rows an actor
        rows = [windows_row(i, start, source.windows[start:start + per_row])
                for i, start in enumerate(range(0, len(source.windows), per_row))]
        kwargs = {"identity": model_identity(lm), "sites": sites, "settings": settings}
        merged, pending, following = None, {}, 0
        for row in self._run(ProfileWorker, kwargs, rows, f"profile {settings.kind} on Ray", progress,
                             "rerun the profile"):
            pending[int(row["index"])] = [LayerStats.from_state_dict(sd) for sd in pickle.loads(row["state"])]
            while following in pending:
                part = pending.pop(following)
                merged = part if merged is None else [m.merge(p) for m, p in zip(merged, part)]
                following += 1
        if following != len(rows):
            raise InputError(f"the Ray job returned {following} of {len(rows)} parts of the profile; rerun it")
        return merged

    def _run(self, actor, kwargs: dict, rows: list[dict], desc: str, progress: bool, on_failure: str):
        """Stream the output rows of `actor` mapped over `rows` (one row per call), then close the pool."""
        from tqdm.auto import tqdm

        ray = require_ray()
        s = self.settings
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # lamina's own bar says how far the job is
        ray.data.DataContext.get_current().enable_progress_bars = False
        bar = tqdm(total=len(rows), desc=desc, unit="row", disable=not progress)
        try:
            if not rows:
                return
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
            mapped = dataset.map_batches(
                actor, batch_size=1, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(s.actors, len(rows))),
                fn_constructor_kwargs={**kwargs, "device": "cuda" if s.gpus_per_actor > 0 else "cpu"},
                num_cpus=s.cpus_per_actor, num_gpus=s.gpus_per_actor)
            for row in mapped.iter_rows():
                bar.update(1)
                yield row
        except ray.exceptions.RayError as err:  # Ray wraps an actor's error in its own types
            replaced = job_error(err, on_failure)
            if replaced is None:
                raise
            raise replaced from None
        finally:
            bar.close()
            self.close()
