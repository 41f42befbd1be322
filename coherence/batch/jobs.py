"""What one batch job is, where the clips of a batch come from, and how one job runs (inside a worker).

A job is one clip, the path its processed copy goes to (``None`` when the clip is only scored) and the
:class:`BatchOptions` shared by the whole batch. :func:`run_job` calls the public Python API (:class:`Pipeline`
and :func:`coherence.metrics.score`), never the command line, and turns every failure into a ``"failed"`` record
instead of raising, so one bad clip never stops a batch.
"""

from __future__ import annotations

import csv
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coherence.errors import CoherenceError, ConfigError, DependencyError, InputError, OutputError
from coherence.io.probe import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from coherence.io.writer import VIDEO_FORMATS
from coherence.pipeline import Pipeline
from coherence.stage import Stage

log = logging.getLogger(__name__)

# Lines of a text manifest that start with this are comments.
_COMMENT = "#"
_PATH_COLUMNS = ("path", "file")


@dataclass(frozen=True)
class BatchOptions:
    """What to do with every clip of a batch (keyword-only, picklable, JSON-friendly).

    Attributes:
        smooth: run the :class:`~coherence.smooth.Smoother` (default preset).
        interpolate_factor: run the :class:`~coherence.interpolate.Interpolator` with this integer factor.
        interpolate_fps: or to this output frame rate (``"60"``, ``"30000/1001"``).
        score: score each result (the output when a stage ran, with the input as reference when the frame count
            is kept); with no stage at all the clip itself is always scored.
        fps: frame rate of image-folder clips (default 24).
        output_format: suffix of the outputs (``".mp4"``...); default: the input's when writable, else ``.mp4``.
        device: torch device of the stages and metrics (``"cpu"`` or ``"cuda"``).
    """

    smooth: bool = False
    interpolate_factor: int | None = None
    interpolate_fps: str | None = None
    score: bool = False
    fps: str | None = None
    output_format: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.interpolate_factor is not None and self.interpolate_fps is not None:
            raise ConfigError("interpolate either by a factor or to a frame rate, not both")
        if self.output_format is not None and self.output_format.lower() not in VIDEO_FORMATS:
            raise ConfigError(f"cannot write {self.output_format} files; use one of {', '.join(VIDEO_FORMATS)}")

    @property
    def interpolates(self) -> bool:
        return self.interpolate_factor is not None or self.interpolate_fps is not None

    @property
    def has_stages(self) -> bool:
        return self.smooth or self.interpolates

    @property
    def scores(self) -> bool:
        return self.score or not self.has_stages

    def signature(self) -> dict[str, Any]:
        """The options that change a result (what a resumed batch compares); the device does not."""
        facts = asdict(self)
        facts.pop("device")
        facts["score"] = self.scores
        return facts

    def build_stages(self) -> list[Stage]:
        """The stages of the pipeline, built in the process that runs them (they hold flow estimators)."""
        return list(Pipeline.from_options(smooth=self.smooth, factor=self.interpolate_factor,
                                          to_fps=self.interpolate_fps, device=self.device).stages)


@dataclass(frozen=True)
class Job:
    """One clip to process.

    Attributes:
        path: the clip (video file or image folder), absolute.
        output: where the processed clip goes; ``None`` when the batch only scores.
        options: what to do.
        fingerprint: size and modification time of the clip when the batch was planned (``None`` if missing);
            a resumed batch redoes a clip whose fingerprint changed.
    """

    path: Path
    output: Path | None
    options: BatchOptions
    fingerprint: dict[str, int] | None


def fingerprint(path: Path) -> dict[str, int] | None:
    """``{"size", "mtime_ns"}`` of a file, or summed over the files of an image folder; ``None`` if missing."""
    try:
        if path.is_dir():
            stats = [p.stat() for p in path.iterdir() if p.is_file()]
            return {"size": sum(s.st_size for s in stats), "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}
        stat = path.stat()
    except OSError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# -- where clips come from ------------------------------------------------------------------------------------
def _is_image_folder(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def find_clips(folder: Path, *, exclude: Path | None = None) -> list[Path]:
    """Clips under ``folder``, recursively, sorted: video files, and folders that hold images (one clip each).

    Hidden files and folders (partial outputs among them) and ``exclude`` (an output folder inside the input
    folder) are ignored; so are files that are neither video nor image.
    """
    found: list[Path] = []
    excluded = exclude.resolve() if exclude is not None else None
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != excluded)
        if _is_image_folder(here):
            found.append(here)
            continue
        found.extend(here / f for f in sorted(files)
                     if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_SUFFIXES)
    return found


def read_manifest(manifest: Path) -> list[Path]:
    """Clip paths listed in a manifest, relative ones resolved against the manifest's folder.

    A ``.csv``/``.tsv`` manifest needs a ``path`` or ``file`` column; any other file lists one path a line
    (blank lines and lines starting with ``#`` are skipped).

    Raises:
        InputError: an unreadable manifest, or a table without a path column.
    """
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{manifest}: cannot read the manifest ({exc})") from exc
    suffix = manifest.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        columns = {name.strip().lower(): name for name in rows.fieldnames or []}
        column = next((columns[c] for c in _PATH_COLUMNS if c in columns), None)
        if column is None:
            raise InputError(f"{manifest}: the table has no 'path' or 'file' column "
                             f"(columns: {', '.join(columns) or 'none'})")
        entries = [(row.get(column) or "").strip() for row in rows]
    else:
        entries = [line.strip() for line in text.splitlines()]
    base = manifest.parent
    return [base / entry for entry in entries if entry and not entry.startswith(_COMMENT)]


def collect_clips(source: Path, *, exclude: Path | None = None) -> list[Path]:
    """The clips of a batch source: a folder (searched recursively), a manifest, or one video file.

    Returns absolute paths in order, without duplicates.

    Raises:
        InputError: a missing source, or one that holds no clips.
    """
    if not source.exists():
        raise InputError(f"{source}: no such folder or manifest")
    if source.is_dir():
        clips = find_clips(source, exclude=exclude)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        clips = [source]
    else:
        clips = read_manifest(source)
    unique = list(dict.fromkeys(Path(os.path.abspath(p)) for p in clips))
    if not unique:
        raise InputError(f"{source}: no clips found (video files, image folders, or a manifest of paths)")
    return unique


def output_path(clip: Path, root: Path, out_dir: Path, options: BatchOptions) -> Path:
    """Where the processed copy of ``clip`` goes: its path under ``root`` mirrored under ``out_dir``."""
    try:
        relative = clip.relative_to(root)
    except ValueError:
        relative = Path(clip.name)
    if relative == Path("."):
        relative = Path(clip.name)
    if clip.is_dir():
        return out_dir / relative
    suffix = options.output_format or clip.suffix
    if suffix.lower() not in VIDEO_FORMATS:
        suffix = ".mp4"
    return out_dir / relative.with_suffix(suffix.lower())


# -- running one job ------------------------------------------------------------------------------------------
_KINDS: tuple[tuple[type[CoherenceError], str], ...] = (
    (InputError, "input"), (OutputError, "output"), (ConfigError, "config"), (DependencyError, "dependency"))


def error_kind(exc: BaseException) -> str:
    """``"input"``, ``"output"``, ``"config"``, ``"dependency"`` or ``"internal"`` for an exception."""
    return next((kind for cls, kind in _KINDS if isinstance(exc, cls)), "internal")


def base_record(job: Job) -> dict[str, Any]:
    """The fields every ledger line has, before the outcome is known."""
    return {"path": str(job.path), "status": "failed", "options": job.options.signature(),
            "fingerprint": job.fingerprint, "output": None, "metrics": None, "timings": {}, "error": None,
            "error_kind": None}


def failure_record(job: Job, message: str, kind: str, *, seconds: float = 0.0) -> dict[str, Any]:
    """A ``"failed"`` ledger line for ``job`` (also used by executors when a worker dies)."""
    record = base_record(job)
    record.update(error=message, error_kind=kind, timings={"total": round(seconds, 3)},
                  finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return record


def _score(job: Job, target: Path, reference_ok: bool) -> dict[str, Any]:
    """Score ``target`` (the clip or its processed copy); the input is the reference when frames correspond."""
    from coherence.io import read_clip
    from coherence.metrics import score

    fps = job.options.fps if target.is_dir() else None
    clip = read_clip(target, fps=fps)
    reference = None
    if reference_ok:
        original = read_clip(job.path, fps=job.options.fps if job.path.is_dir() else None)
        if original.frames.shape == clip.frames.shape:
            reference = original.frames
    report = score(clip.frames.to(job.options.device),
                   None if reference is None else reference.to(job.options.device), fps=clip.fps,
                   path=str(job.path))
    facts = report.to_dict()
    return {"metrics": facts["metrics"], "skipped_metrics": facts["skipped"], "cuts": len(report.cuts),
            "duplicates": len(report.duplicates), "scored_frames": report.frames}


def run_job(job: Job) -> dict[str, Any]:
    """Run one job and return its ledger record; never raises except on interruption.

    The record holds ``path``, ``status`` (``"ok"``/``"failed"``), ``output``, ``metrics`` (name -> value, ``None``
    for undefined), frame counts and rates, ``timings`` (seconds: ``process``, ``score``, ``total``), and for a
    failure ``error`` (one sentence) and ``error_kind``.
    """
    from coherence.io import probe

    start, cpu_start = time.perf_counter(), time.process_time()
    record = base_record(job)
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    timings: dict[str, float] = {}
    try:
        options = job.options
        info = probe(job.path, fps=options.fps)
        record.update(frames_in=info.frames, fps_in=str(info.fps), width=info.width, height=info.height)
        target = job.path
        if options.has_stages:
            if job.output is None:
                raise ConfigError("a batch that processes clips needs an output path for each")
            job.output.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            result = Pipeline(options.build_stages()).run(info, job.output, fps=options.fps)
            timings["process"] = round(time.perf_counter() - t0, 3)
            record.update(output=str(result.output), frames_out=result.frames_out, fps_out=str(result.fps_out))
            target = result.output
        if options.scores:
            t0 = time.perf_counter()
            record.update(_score(job, target, reference_ok=options.has_stages and not options.interpolates))
            timings["score"] = round(time.perf_counter() - t0, 3)
        record["status"] = "ok"
    except Exception as exc:
        # any failure, expected (CoherenceError) or not, is this clip's: the ledger says what happened and the
        # batch goes on with the next clip
        message = str(exc) if isinstance(exc, CoherenceError) else f"{type(exc).__name__}: {exc}"
        record.update(error=message.splitlines()[0] if message else type(exc).__name__, error_kind=error_kind(exc))
        log.info("%s: %s", job.path, record["error"])
    timings["total"] = round(time.perf_counter() - start, 3)
    timings["cpu"] = round(time.process_time() - cpu_start, 3)  # this process only, not its ffmpeg children
    record["timings"] = timings
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record
