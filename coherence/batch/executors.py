"""Executors: where the jobs of a batch run. A local process pool by default; Ray tasks when asked.

An executor takes the jobs to run and yields their ledger records as they finish, in any order. It never
raises because of one job: a job whose worker dies (killed, out of memory, a crash in native code) comes back as
a ``"failed"`` record of kind ``"crash"``. Workers compute with one thread each, so that ``N`` workers use ``N``
cores instead of fighting over them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from coherence.batch.jobs import Job, failure_record, run_job
from coherence.errors import ConfigError, DependencyError

log = logging.getLogger(__name__)

Record = dict[str, Any]

# Jobs queued per worker beyond the one it runs: keeps workers busy without submitting thousands at once.
_QUEUE_PER_WORKER = 2
_CRASH = "the worker process died while running this clip (killed, out of memory, or a crash in native code)"


class _Terminated(BaseException):
    """Raised in a pool worker by SIGTERM, to unwind the running job (and delete its partial output)."""


_IN_JOB = False


def _on_terminate(signum: int, frame: object) -> None:
    if _IN_JOB:
        raise _Terminated
    os._exit(128 + signum)


def _pool_job(task: Callable[[Job], Record], job: Job) -> Record:
    """Run ``task(job)`` in a pool worker; a SIGTERM unwinds it, then ends the process.

    The process pool catches every exception of a job, ``SystemExit`` included, and keeps the worker alive for the
    next one: a worker told to stop must leave with ``os._exit`` once the job has cleaned up.
    """
    global _IN_JOB
    _IN_JOB = True
    try:
        return task(job)
    except _Terminated:
        os._exit(128 + signal.SIGTERM)
    finally:
        _IN_JOB = False


def init_worker(log_level: int | None = None, own_signals: bool = False) -> None:
    """Make this process compute with one thread (torch intra- and inter-op, OpenCV) and keep its freed frame
    buffers for reuse (:func:`coherence.allocator.reuse_freed_memory`).

    Args:
        log_level: when given, this (spawned) process logs ``coherence`` messages at this level to stderr, tagged
            with its process id; the caller's logging setup does not cross a spawn.
        own_signals: a pool worker: Ctrl-C is left to the driving process (which then stops the workers), and
            SIGTERM unwinds the running job so that no partial output is left behind.
    """
    import cv2
    import torch

    from coherence.allocator import reuse_freed_memory

    if log_level is not None:
        logging.basicConfig(level=log_level, format="coherence: %(levelname)s: [worker %(process)d] %(message)s")
    if own_signals:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _on_terminate)

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already started in this process
        pass
    cv2.setNumThreads(1)
    reuse_freed_memory()


@runtime_checkable
class Executor(Protocol):
    """Runs jobs somewhere and yields their records as they finish; ``close`` frees its workers."""

    name: str

    def map(self, jobs: Sequence[Job]) -> Iterator[Record]:
        """Yield one ledger record per job, in completion order."""
        ...

    def close(self) -> None:
        """Stop the workers (also on interruption)."""
        ...


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalExecutor:
    """A pool of ``workers`` spawned processes on this machine (default: one per available CPU core).

    ``task`` is the function each job runs (default :func:`~coherence.batch.jobs.run_job`); it must be importable
    by name, since spawned workers look it up again.

    Processes are spawned, not forked, so that no thread or CUDA state of the caller leaks into them. A worker
    that dies breaks the pool: the pool is replaced, and the jobs that were in flight are run again one at a time
    so that only the clip that kills its worker is recorded as crashed.
    """

    name = "local"

    def __init__(self, *, workers: int | None = None, task: Callable[[Job], Record] = run_job) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self.workers = workers or _default_workers()
        self.task = task
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self, size: int) -> ProcessPoolExecutor:
        self.close()
        level = logging.getLogger("coherence").getEffectiveLevel()
        self._pool = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=init_worker, initargs=(level, True))
        return self._pool

    def map(self, jobs: Sequence[Job]) -> Iterator[Record]:
        pending: deque[Job] = deque(jobs)
        suspects: deque[Job] = deque()  # in flight when a worker died: rerun alone to find the culprit
        running: dict[Future[Record], Job] = {}
        size = max(1, min(self.workers, len(jobs)))  # spawning a worker costs seconds: none beyond the jobs
        pool = self._new_pool(size)
        isolated = False
        while pending or suspects or running:
            if self._pool is None:  # the last pool broke: start a fresh one only when there is work for it
                pool = self._new_pool(size)
            if suspects and not running:
                job = suspects.popleft()
                running[pool.submit(_pool_job, self.task, job)] = job
                isolated = True
            elif not suspects:
                while pending and len(running) < self.workers * _QUEUE_PER_WORKER:
                    job = pending.popleft()
                    running[pool.submit(_pool_job, self.task, job)] = job
                isolated = False
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                job = running.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool:
                    broken = True
                    if not isolated:
                        suspects.append(job)
                        continue
                    record = failure_record(job, _CRASH, "crash")
                except Exception as exc:  # the job's result could not come back (it did not pickle, say)
                    record = failure_record(job, f"{type(exc).__name__}: {exc}", "internal")
                yield record
            if broken:
                # every other future of a broken pool fails too: collect them, then start a fresh pool
                wait(running)
                suspects.extend(running.values())
                running.clear()
                log.warning("a worker process died; %d clips will be retried one at a time", len(suspects))
                self.close()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # on an interruption the workers may be deep in a clip: stop them rather than wait for them
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise DependencyError("Ray is not installed: run `pip install coherence[ray]` to run batches on Ray") from exc
    return ray


def _ray_job(job: Job) -> Record:
    """The body of one Ray task."""
    init_worker()
    return run_job(job)


class RayExecutor:
    """Ray tasks, one per clip, each declaring one CPU (and one GPU when the device is CUDA).

    Args:
        address: a Ray cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); ``None`` starts a local Ray,
            unless this process is already connected to one, which is then used as it is.
        workers: CPUs of a local Ray that this executor starts (default: all).

    Clip paths and output folders must be reachable from every node under the same paths (a shared file system).
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self._ray = _import_ray()
        self._started = False
        if not self._ray.is_initialized():
            options: dict[str, Any] = {"address": address} if address else {"num_cpus": workers}
            try:
                # Ray's own start-up notices only when the caller asked for coherence's (--verbose)
                level = logging.getLogger("coherence").getEffectiveLevel()
                self._ray.init(include_dashboard=False, log_to_driver=False,
                               logging_level=logging.INFO if level <= logging.INFO else logging.ERROR, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise DependencyError(f"cannot start or reach Ray at {address or 'a local instance'} ({exc})") from exc
            self._started = True
        self._pending: dict[Any, Job] = {}

    def map(self, jobs: Sequence[Job]) -> Iterator[Record]:
        ray = self._ray
        if not jobs:
            return
        gpus = 1 if jobs[0].options.device.startswith("cuda") else 0
        task = ray.remote(_ray_job).options(num_cpus=1, num_gpus=gpus, max_retries=1)
        capacity = max(1, int(ray.cluster_resources().get("CPU", 1))) * _QUEUE_PER_WORKER
        pending: deque[Job] = deque(jobs)
        while pending or self._pending:
            while pending and len(self._pending) < capacity:
                job = pending.popleft()
                self._pending[task.remote(job)] = job
            ready, _ = ray.wait(list(self._pending), num_returns=1)
            for ref in ready:
                job = self._pending.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:
                    log.warning("%s: %s", job.path, exc)
                    yield failure_record(job, f"{_CRASH} [{type(exc).__name__}]", "crash")

    def close(self) -> None:
        for ref in list(self._pending):
            self._ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started:
            self._ray.shutdown()
            self._started = False


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def get_executor(name: str, **options: Any) -> Executor:
    """Build the executor registered as ``name`` (``"local"`` or ``"ray"``) with its keyword options."""
    factory = EXECUTORS.get(name)
    if factory is None:
        raise ConfigError(f"unknown executor {name!r}; choose from: {', '.join(EXECUTORS)}")
    return factory(**options)
