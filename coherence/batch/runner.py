"""Plan and run a batch: which clips, where their outputs go, what a previous run already did, and the loop
that hands jobs to an executor and appends each result to the ledger as it arrives."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coherence.batch.executors import Executor, get_executor
from coherence.batch.jobs import BatchOptions, Job, collect_clips, fingerprint, output_path
from coherence.batch.ledger import LEDGER_NAME, Ledger, is_done, latest_records
from coherence.errors import OutputError

log = logging.getLogger(__name__)

# on_progress(done, total, record): once with (0, total, None) before the first job, then after every job.
ProgressCallback = Callable[[int, int, "dict[str, Any] | None"], None]


@dataclass(frozen=True)
class BatchPlan:
    """The jobs of a batch: those to run and those a previous run already did."""

    jobs: list[Job]
    skipped: list[Job]
    out_dir: Path
    ledger: Path


@dataclass
class BatchSummary:
    """What a batch did.

    Attributes:
        ok, failed: jobs run in this call, by outcome.
        skipped: jobs not run because the ledger already had them.
        failures: ``(path, error)`` of each failed job.
        seconds: wall-clock time of the run.
        ledger: path of ``results.jsonl``.
    """

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    ledger: Path = Path(LEDGER_NAME)

    @property
    def ran(self) -> int:
        return self.ok + self.failed


def _root(source: Path, clips: list[Path]) -> Path:
    """The folder whose layout the outputs mirror."""
    if source.is_dir():
        return Path(os.path.abspath(source))
    return Path(os.path.commonpath([str(c.parent) for c in clips]))


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from exc
    if not os.access(out_dir, os.W_OK):
        raise OutputError(f"{out_dir}: the output folder is not writable")


def plan_batch(source: str | Path, out_dir: str | Path, *, options: BatchOptions, force: bool = False) -> BatchPlan:
    """Find the clips of ``source`` and decide which need running.

    Args:
        source: a folder (searched recursively for videos and image folders), a manifest (text file of paths, or
            CSV/TSV with a ``path`` or ``file`` column; relative paths are relative to it), or one video.
        out_dir: folder of ``results.jsonl`` and of the processed clips (created if needed); outputs mirror the
            clips' layout under the source folder.
        options: what to do with each clip.
        force: run every clip, even those the ledger says are done.

    Raises:
        InputError: the source is missing or holds no clips.
        OutputError: the output folder cannot be created or written, or an output would replace its input.
    """
    source, out_dir = Path(source), Path(out_dir)
    # build the stages once here so that a bad option fails the batch at once, not every clip; on the CPU, since
    # the workers of a cluster may have a GPU that this machine lacks
    replace(options, device="cpu").build_stages()
    clips = collect_clips(source, exclude=out_dir)
    _prepare_out_dir(out_dir)
    root = _root(source, clips)
    jobs = [Job(path=clip, output=output_path(clip, root, out_dir.absolute(), options) if options.has_stages else None,
                options=options, fingerprint=fingerprint(clip)) for clip in clips]
    for job in jobs:
        if job.output is not None and job.output.resolve() == job.path.resolve():
            raise OutputError(f"{job.output}: the output would overwrite the input clip; choose another output folder")
    ledger = out_dir / LEDGER_NAME
    previous = {} if force else latest_records(ledger)
    todo: list[Job] = []
    skipped: list[Job] = []
    for job in jobs:
        (skipped if is_done(job, previous.get(str(job.path))) else todo).append(job)
    return BatchPlan(jobs=todo, skipped=skipped, out_dir=out_dir, ledger=ledger)


def run_batch(source: str | Path, out_dir: str | Path, *, options: BatchOptions | None = None,
              executor: str | Executor = "local", workers: int | None = None, ray_address: str | None = None,
              force: bool = False, on_progress: ProgressCallback | None = None) -> BatchSummary:
    """Run a pipeline (or scoring) over every clip of ``source``; resumable, one ledger line per finished clip.

    Args:
        source, out_dir, force: see :func:`plan_batch`.
        options: what to do with each clip (default: score it).
        executor: ``"local"`` (a process pool), ``"ray"``, or an :class:`Executor` (the caller closes it).
        workers: processes of the local pool, or CPUs of a local Ray (default: every available core).
        ray_address: the Ray cluster to join (``None``: a local Ray).
        on_progress: called with ``(done, total, record)``: first ``(0, total, None)``, then after each clip.

    Returns:
        A :class:`BatchSummary`. A failed clip is recorded in the ledger and counted, never raised.

    Raises:
        InputError, OutputError: see :func:`plan_batch`. DependencyError: Ray requested but not installed.
        KeyboardInterrupt: passed on after the workers are stopped; the ledger holds every finished clip.
    """
    start = time.perf_counter()
    plan = plan_batch(source, out_dir, options=options or BatchOptions(), force=force)
    summary = BatchSummary(skipped=len(plan.skipped), ledger=plan.ledger)
    if plan.skipped:
        log.info("%d clips already done (see %s); --force redoes them", len(plan.skipped), plan.ledger)
    total = len(plan.jobs)
    if on_progress is not None:
        on_progress(0, total, None)
    if not plan.jobs:
        return summary
    if isinstance(executor, str):
        options_of = {"workers": workers} if executor == "local" else {"workers": workers, "address": ray_address}
        runner: Any = contextlib.closing(get_executor(executor, **options_of))
    else:
        runner = contextlib.nullcontext(executor)
    with Ledger(plan.ledger) as ledger, runner as pool:
        for record in pool.map(plan.jobs):
            ledger.append(record)
            if record["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
                summary.failures.append((record["path"], str(record.get("error"))))
            if on_progress is not None:
                on_progress(summary.ran, total, record)
    summary.seconds = time.perf_counter() - start
    return summary
