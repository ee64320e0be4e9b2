"""The Ray executor: batch work as Ray Data ``map_batches`` over actors that load the model
once; independent tasks (seed sweeps, bootstrap shards) as Ray tasks.

``ray.init(address=...)`` joins an existing cluster; without an address a local cluster is
started (no dashboard, its temp folder in the project's working folder) and shut down by
:meth:`RayExecutor.close`. Batches are cut by the caller (:func:`tunegate.execute.chunk`), so
each actor call scores exactly the batch the local executor would: results are identical.

On a local cluster each worker is pinned to its own cores (``threads`` per worker), so two
workers on two cores do not each start two inference threads and fight over them.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tunegate._optional import require
from tunegate.execute._base import ExecutorError, ModelRecipe, recipe_for

__all__ = ["RayExecutor"]

B = TypeVar("B")
R = TypeVar("R")
T = TypeVar("T")

_MAX_TEMP_DIR = 40
"""Ray puts Unix sockets under ``<temp>/session_<date>_<time>_<us>_<pid>/sockets/``, and a
socket path may not exceed 107 bytes: a longer temp folder fails at start-up."""


def _limit_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _pin(slot: int, threads: int) -> None:
    """Pin this process to ``threads`` cores chosen by its slot (round robin)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return
    if len(cores) <= threads:
        return
    first = (slot * threads) % len(cores)
    os.sched_setaffinity(0, {cores[(first + j) % len(cores)] for j in range(threads)})


class _Slots:
    """Hands each new worker a number (its cores on the local node)."""

    def __init__(self) -> None:
        self.next = 0

    def take(self) -> int:
        self.next += 1
        return self.next - 1


class _BatchWorker:
    """A Ray Data actor: builds the model once, then applies ``fn`` to each pickled batch."""

    def __init__(
        self, recipe: ModelRecipe, fn: Callable[[Any, Any], Any], threads: int, slots: Any
    ) -> None:
        if slots is not None:
            import ray

            _pin(int(ray.get(slots.take.remote())), threads)
        _limit_threads(threads)
        self.model = recipe()
        _limit_threads(threads)
        self.fn = fn

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = [pickle.dumps(self.fn(self.model, pickle.loads(p))) for p in batch["payload"]]
        out = np.empty(len(outs), dtype=object)
        out[:] = outs
        return {"i": batch["i"], "out": out}


def _run_task(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    _limit_threads(threads)
    return fn(item)


class RayExecutor:
    """Batch work on Ray.

    ``address``: a cluster to join (``ray://host:10001`` or ``auto``); ``None`` starts a
    local cluster with ``workers`` CPUs in ``temp_dir`` (default: a ``tunegate-ray`` folder
    in the system temp folder). ``workers``: actors scoring at once (default: the cluster's
    CPUs divided by ``threads``). ``threads``: inference threads (and CPUs) per worker.
    The cluster starts on first use; :attr:`startup_s` records how long that took.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        threads: int = 1,
        temp_dir: str | Path | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.address = address
        self.threads = threads
        self._workers = workers
        self.temp_dir = _short_temp_dir(temp_dir)
        self.startup_s: float | None = None
        self._started = False

    def _ray(self) -> Any:
        ray = require("ray", purpose="the ray executor (executor: ray)")
        if ray.is_initialized():
            return ray
        start = time.perf_counter()
        try:
            if self.address is not None:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                Path(self.temp_dir).mkdir(parents=True, exist_ok=True)
                ray.init(
                    num_cpus=None if self._workers is None else self._workers * self.threads,
                    include_dashboard=False,
                    _temp_dir=str(self.temp_dir),
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
        except Exception as exc:
            where = f"the cluster at {self.address}" if self.address else "a local cluster"
            raise ExecutorError(
                f"could not start Ray on {where} ({type(exc).__name__}: {exc}); check "
                f"ray_address in tunegate.yaml (or `ray status` on the cluster), or run with "
                f"--executor local"
            ) from exc
        self.startup_s = time.perf_counter() - start
        self._started = True
        return ray

    @property
    def workers(self) -> int:
        """Actors scoring batches at once."""
        if self._workers is not None:
            return self._workers
        ray = self._ray()
        return max(1, int(ray.cluster_resources().get("CPU", 1)) // self.threads)

    def map_batches(
        self, model: Any, fn: Callable[[Any, B], R], batches: Sequence[B]
    ) -> Iterator[R]:
        if not batches:
            return
        recipe = recipe_for(model)
        ray = self._ray()
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # (results are also reordered below)
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        workers = min(self.workers, len(batches))
        slots = ray.remote(num_cpus=0)(_Slots).remote() if self.address is None else None
        rows = [{"i": i, "payload": pickle.dumps(b)} for i, b in enumerate(batches)]
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 8 * workers))
        out = ds.map_batches(
            _BatchWorker,
            fn_constructor_args=(recipe, fn, self.threads, slots),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=self.threads,
        )
        pending: dict[int, Any] = {}
        want = 0
        for row in out.iter_rows():
            pending[int(row["i"])] = row["out"]
            while want in pending:
                yield pickle.loads(pending.pop(want))
                want += 1
        if want != len(batches):
            raise ExecutorError(f"Ray returned {want} of {len(batches)} batches")

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not items:
            return []
        ray = self._ray()
        task = ray.remote(num_cpus=self.threads)(_run_task)
        try:
            fn_ref = ray.put(fn)
        except Exception as exc:
            raise ExecutorError(
                f"the task {getattr(fn, '__qualname__', fn)!r} cannot be sent to Ray workers "
                f"({type(exc).__name__}: {exc}); run with --executor local"
            ) from exc
        return list(ray.get([task.remote(fn_ref, item, self.threads) for item in items]))

    def close(self) -> None:
        """Shut down the local cluster this executor started (a joined cluster keeps running;
        this process disconnects)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short_temp_dir(temp_dir: str | Path | None) -> Path:
    if temp_dir is not None and len(str(Path(temp_dir).resolve())) <= _MAX_TEMP_DIR:
        return Path(temp_dir).resolve()
    # too long for Ray's socket paths (or not given): a short folder in the system temp
    return Path(tempfile.gettempdir()) / f"tunegate-ray-{os.getuid()}"
