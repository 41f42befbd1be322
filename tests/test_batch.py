"""Batch runs: clip discovery, manifests, the results ledger, resume, failure isolation, the CLI and Ray."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import make_media

import cli
from coherence.batch import (
    BatchOptions,
    Job,
    Ledger,
    LocalExecutor,
    collect_clips,
    is_done,
    plan_batch,
    read_ledger,
    read_manifest,
    run_batch,
    run_job,
)
from coherence.errors import InputError, OutputError


def _clip(path: Path, frames: int = 8) -> Path:
    return make_media(path, "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=12", "-frames:v", str(frames),
                      "-c:v", "libx264", "-pix_fmt", "yuv420p")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two good clips (one in a subfolder), a corrupt file, a one-frame clip and a non-video file."""
    root = tmp_path_factory.mktemp("batch_in")
    (root / "sub").mkdir()
    _clip(root / "a.mp4")
    _clip(root / "sub" / "b.mp4", frames=10)
    _clip(root / "one.mp4", frames=1)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    (root / "notes.txt").write_text("not a clip")
    return root


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    out: Path


def run_cli(*args: str) -> CliRun:
    """``coherence ARGS`` in this process (spawned workers start the same way as from the shell)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(list(args))
    return CliRun(code, stdout.getvalue(), stderr.getvalue(), Path(args[args.index("-o") + 1]))


@pytest.fixture(scope="module")
def cli_run(clip_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """``coherence batch IN -o OUT --workers 2``, once for the module (spawning a pool costs seconds)."""
    return run_cli("batch", str(clip_folder), "-o", str(tmp_path_factory.mktemp("batch_out")), "--workers", "2")


def _by_name(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {Path(r["path"]).name: r for r in records}


# -- discovery and manifests ----------------------------------------------------------------------------------
def test_folder_discovery_is_recursive_and_skips_outputs_and_non_video(clip_folder: Path, tmp_path: Path) -> None:
    names = [p.relative_to(clip_folder).as_posix() for p in collect_clips(clip_folder)]
    assert names == ["a.mp4", "broken.mp4", "one.mp4", "sub/b.mp4"]
    # an image folder is one clip; an output folder inside the input is not searched
    (tmp_path / "frames").mkdir()
    _clip(tmp_path / "frames" / "%03d.png", frames=3)
    (tmp_path / "out").mkdir()
    _clip(tmp_path / "out" / "done.mp4", frames=2)
    assert collect_clips(tmp_path, exclude=tmp_path / "out") == [tmp_path / "frames"]


def test_manifests_text_csv_and_tsv(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("# clips\na.mp4\n\n/abs/b.mp4\n")
    assert read_manifest(tmp_path / "list.txt") == [tmp_path / "a.mp4", Path("/abs/b.mp4")]
    (tmp_path / "m.csv").write_text("id,Path\n1,x/a.mp4\n2,b.gif\n")
    assert read_manifest(tmp_path / "m.csv") == [tmp_path / "x" / "a.mp4", tmp_path / "b.gif"]
    (tmp_path / "m.tsv").write_text("file\tfps\nc.mp4\t8\n")
    assert read_manifest(tmp_path / "m.tsv") == [tmp_path / "c.mp4"]
    (tmp_path / "bad.csv").write_text("name,fps\na,8\n")
    with pytest.raises(InputError, match="no 'path' or 'file' column"):
        read_manifest(tmp_path / "bad.csv")


def test_shared_manifest_lists_every_shared_clip(shared_clips: Path) -> None:
    from_manifest = collect_clips(shared_clips / "MANIFEST.tsv")
    assert len(from_manifest) == 28 and all(p.is_file() for p in from_manifest)
    assert sorted(from_manifest) == sorted(collect_clips(shared_clips))


def test_plan_refuses_missing_source_and_overwriting_outputs(clip_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        plan_batch(tmp_path / "nothing", tmp_path / "o", options=BatchOptions())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no clips found"):
        plan_batch(tmp_path / "empty", tmp_path / "o", options=BatchOptions())
    with pytest.raises(OutputError, match="overwrite the input"):
        plan_batch(clip_folder, clip_folder, options=BatchOptions(smooth=True))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        plan_batch(clip_folder, tmp_path / "file", options=BatchOptions())


def test_outputs_mirror_the_input_layout(clip_folder: Path, tmp_path: Path) -> None:
    plan = plan_batch(clip_folder, tmp_path / "o", options=BatchOptions(smooth=True, output_format=".mkv"))
    outputs = sorted(j.output.relative_to(tmp_path / "o").as_posix() for j in plan.jobs if j.output)
    assert outputs == ["a.mkv", "broken.mkv", "one.mkv", "sub/b.mkv"]


# -- ledger and resume ----------------------------------------------------------------------------------------
def test_ledger_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with Ledger(path) as ledger:
        ledger.append({"path": "a", "status": "ok"})
    with path.open("a") as handle:
        handle.write('{"path": "b", "sta')  # a write cut short by a power failure
    with Ledger(path) as ledger:
        ledger.append({"path": "c", "status": "failed"})
    assert [r["path"] for r in read_ledger(path)] == ["a", "c"]


def test_is_done_needs_same_options_and_unchanged_file(clip_folder: Path) -> None:
    clip = clip_folder / "a.mp4"
    stat = clip.stat()
    job = Job(path=clip, output=None, options=BatchOptions(), fingerprint={"size": stat.st_size,
                                                                            "mtime_ns": stat.st_mtime_ns})
    record = {"path": str(clip), "status": "ok", "options": BatchOptions(score=True).signature(),
              "fingerprint": job.fingerprint, "output": None}
    assert is_done(job, record)  # scoring is implied without a stage: the same job
    assert not is_done(job, {**record, "options": BatchOptions(smooth=True).signature()})
    assert not is_done(job, {**record, "fingerprint": {"size": 1, "mtime_ns": 0}})
    failed = {**record, "status": "failed"}
    assert is_done(job, {**failed, "error_kind": "input"})  # a corrupt file fails the same way again
    assert not is_done(job, {**failed, "error_kind": "crash"})  # a crash may not repeat: retried


def test_cli_batch_records_every_clip_and_survives_bad_ones(cli_run: CliRun) -> None:
    out = cli_run.out
    assert cli_run.code == 0, cli_run.stderr
    assert "2 ok, 2 failed, 0 skipped" in cli_run.stdout
    assert "Traceback" not in cli_run.stderr
    records = _by_name(read_ledger(out / "results.jsonl"))
    assert len(read_ledger(out / "results.jsonl")) == 4
    assert {name: r["status"] for name, r in records.items()} == {
        "a.mp4": "ok", "b.mp4": "ok", "broken.mp4": "failed", "one.mp4": "failed"}
    assert "not a readable video" in records["broken.mp4"]["error"]
    assert "at least 2 frames" in records["one.mp4"]["error"]
    good = records["b.mp4"]
    assert good["frames_in"] == 10 and good["metrics"]["warping_error"] >= 0 and good["timings"]["total"] > 0
    assert good["output"] is None  # scoring only writes the ledger
    assert set(os.listdir(out)) == {"results.jsonl"}


def test_rerun_skips_done_clips_and_redoes_changed_ones(cli_run: CliRun, clip_folder: Path) -> None:
    out = cli_run.out
    summary = run_batch(clip_folder, out)
    assert (summary.ran, summary.skipped) == (0, 4)
    assert len(plan_batch(clip_folder, out, options=BatchOptions(), force=True).jobs) == 4
    os.utime(clip_folder / "a.mp4", ns=(1, 1))
    assert [j.path.name for j in plan_batch(clip_folder, out, options=BatchOptions()).jobs] == ["a.mp4"]


class _InlineExecutor:
    """Runs jobs in this process (an :class:`~coherence.batch.Executor` for tests)."""

    name = "inline"

    def map(self, jobs: Sequence[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield run_job(job)

    def close(self) -> None:
        pass


def test_interrupt_leaves_whole_lines_and_resumes(clip_folder: Path, tmp_path: Path) -> None:
    def stop_after_first(done: int, total: int, record: dict[str, Any] | None) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(clip_folder, tmp_path, executor=_InlineExecutor(), on_progress=stop_after_first)
    assert len(read_ledger(tmp_path / "results.jsonl")) == 1
    assert (tmp_path / "results.jsonl").read_text().endswith("\n")
    summary = run_batch(clip_folder, tmp_path, executor=_InlineExecutor())
    assert (summary.skipped, summary.ran) == (1, 3)


def test_ctrl_c_stops_the_pool_and_leaves_a_consistent_ledger(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    _clip(source / "a_short.mp4", frames=3)
    for name in ("b_long.mp4", "c_long.mp4"):
        make_media(source / name, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24", "-frames:v", "200",
                   "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    out = tmp_path / "out"
    ledger = out / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--quiet", "batch", str(source), "-o", str(out), "--smooth",
                             "--workers", "1"], cwd=Path(cli.__file__).parent, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (ledger.exists() and ledger.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "interrupted" in err
    assert [Path(r["path"]).name for r in read_ledger(ledger)] == ["a_short.mp4"]
    assert ledger.read_text().endswith("\n")
    assert sorted(p.name for p in out.iterdir()) == ["a_short.mp4", "results.jsonl"]  # no partial output
    assert [j.path.name for j in plan_batch(source, out, options=BatchOptions(smooth=True)).jobs] == [
        "b_long.mp4", "c_long.mp4"]


def crash_on_b(job: Job) -> dict[str, Any]:
    """A job function whose worker dies on ``b.mp4`` (a segfault in native code, say)."""
    if job.path.name == "b.mp4":
        os._exit(3)
    return run_job(job)


def test_a_dying_worker_fails_only_its_clip(clip_folder: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "clips.txt"
    manifest.write_text(f"{clip_folder / 'sub' / 'b.mp4'}\n{clip_folder / 'a.mp4'}\n")
    summary = run_batch(manifest, tmp_path / "out", executor=LocalExecutor(workers=1, task=crash_on_b))
    records = _by_name(read_ledger(tmp_path / "out" / "results.jsonl"))
    assert records["b.mp4"]["error_kind"] == "crash" and "worker process died" in records["b.mp4"]["error"]
    assert records["a.mp4"]["status"] == "ok"  # queued behind the crash, run again in a fresh pool
    assert (summary.ok, summary.failed) == (1, 1)


def test_cli_batch_refusals_are_one_line(tmp_path: Path) -> None:
    for run, code, fragment in [(run_cli("--quiet", "batch", str(tmp_path / "none"), "-o", str(tmp_path / "o")), 2,
                                 "no such folder"),
                                (run_cli("--quiet", "batch", str(tmp_path), "-o", str(tmp_path / "o")), 2,
                                 "no clips found")]:
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        assert run.code == code and len(lines) == 1 and fragment in lines[0], run.stderr


# -- Ray ------------------------------------------------------------------------------------------------------
def test_ray_batch_on_a_local_two_cpu_ray(clip_folder: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_batch(clip_folder, tmp_path, executor="ray")
        records = read_ledger(tmp_path / "results.jsonl")
        assert len(records) == 4 and (summary.ok, summary.failed) == (2, 2)
        assert _by_name(records)["broken.mp4"]["error_kind"] == "input"
        again = run_batch(clip_folder, tmp_path, executor="ray")
        assert (again.ran, again.skipped) == (0, 4)
    finally:
        ray.shutdown()
