"""The command line: one clear line and a documented exit code for every bad input, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cli
from coherence.io import probe


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``coherence ARGS`` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "cli", "--quiet", *args], capture_output=True, text=True,
                          cwd=Path(cli.__file__).parent)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("coherence: error:"), proc.stderr
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


def test_help_lists_commands_and_exit_codes() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for word in ("info", "convert", "demo", "exit codes"):
        assert word in proc.stdout


def test_info_json(clip_with_audio: Path) -> None:
    proc = run_cli("info", str(clip_with_audio), "--json")
    facts = json.loads(proc.stdout)
    assert facts["frames"] == 60 and facts["fps"] == "30000/1001" and facts["audio"] is True


def test_convert_keeps_frames_rate_and_audio(clip_with_audio: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.webm"
    proc = run_cli("convert", str(clip_with_audio), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    info = probe(out)
    assert (info.frames, info.fps, info.has_audio) == (60, probe(clip_with_audio).fps, True)


def test_convert_max_size(clip_with_audio: Path, tmp_path: Path) -> None:
    out = tmp_path / "small"
    assert run_cli("convert", str(clip_with_audio), "-o", str(out), "--max-size", "32").returncode == 0
    info = probe(out, fps=24)
    assert (info.width, info.height, info.frames) == (32, 24, 60)


BAD_INPUTS = {"missing.mp4": None, "empty.mp4": b"", "text.mp4": b"hello" * 50}


@pytest.mark.parametrize(("name", "fragment"), [("missing.mp4", "no such file"), ("empty.mp4", "empty"),
                                                ("text.mp4", "not a readable video")])
def test_bad_inputs_give_one_line(tmp_path: Path, name: str, fragment: str) -> None:
    content = BAD_INPUTS[name]
    if content is not None:
        (tmp_path / name).write_bytes(content)
    proc = run_cli("convert", str(tmp_path / name), "-o", str(tmp_path / "o.mp4"))
    assert_one_line_error(proc, 2, fragment)
    assert not (tmp_path / "o.mp4").exists()


def test_output_equal_to_input_is_refused(clip_with_audio: Path) -> None:
    before = clip_with_audio.read_bytes()
    assert_one_line_error(run_cli("convert", str(clip_with_audio), "-o", str(clip_with_audio)), 3, "overwrite")
    assert clip_with_audio.read_bytes() == before


def test_unwritable_output_folder(clip_with_audio: Path, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("convert", str(clip_with_audio), "-o", str(tmp_path / "no" / "o.mp4")), 3,
                          "does not exist")


def test_unknown_output_format(clip_with_audio: Path, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("convert", str(clip_with_audio), "-o", str(tmp_path / "o.xyz")), 4, ".xyz")


def test_demo_writes_clips_comparison_and_scores(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = run_cli("demo", "-o", str(out), "--frames", "10")
    assert proc.returncode == 0, proc.stderr
    for name in ("clean.mp4", "input.mp4", "smoothed.mp4", "comparison.mp4", "scores.md"):
        assert (out / name).is_file(), name
    assert probe(out / "smoothed.mp4").frames == 10
    before, after = (r["metrics"] for r in json.loads((out / "scores.json").read_text()))
    assert after["warping_error"] < before["warping_error"]
    assert after["psnr"] > before["psnr"]
    assert after["alignment"] >= 0.9


def test_smooth_then_interpolate_in_one_pass(slow_gif: Path, tmp_path: Path) -> None:
    out = tmp_path / "smooth24.mp4"
    proc = run_cli("smooth", str(slow_gif), "-o", str(out), "--to-fps", "24")
    assert proc.returncode == 0, proc.stderr
    info = probe(out)
    # 8 frames at 100/33 fps span 7 * 0.33 s = 2.31 s: frames at k/24 s for k = 0..55
    assert info.fps == 24 and info.frames == 56


@pytest.mark.parametrize(("banner", "fragment"), [("ffmpeg version 4.2.2-static", "version 4.2, older than the 5.1"),
                                                  (None, "does not run")])
def test_an_ffmpeg_too_old_for_the_reader_is_refused_in_one_line(clip_with_audio: Path, tmp_path: Path,
                                                                 banner: str | None, fragment: str) -> None:
    fake = tmp_path / "ffmpeg"
    if banner is not None:  # a build that lacks -fps_mode: ffmpeg 4.2, as imageio-ffmpeg 0.5 ships
        fake.write_text(f"#!/bin/sh\necho '{banner} Copyright (c) 2000-2019 the FFmpeg developers'\n")
        fake.chmod(0o755)
    env = {**os.environ, "COHERENCE_FFMPEG": str(fake)}
    proc = subprocess.run([sys.executable, "-m", "cli", "--quiet", "info", str(clip_with_audio)], capture_output=True,
                          text=True, cwd=Path(cli.__file__).parent, env=env)
    assert_one_line_error(proc, 5, fragment)
    assert "COHERENCE_FFMPEG" in proc.stderr


def test_a_reader_that_stops_early_gets_no_error(clip_with_audio: Path) -> None:
    """``coherence info clip | head -1``: the reader closes the pipe, and the command stops quietly, with no
    traceback or internal error. (Here the pipe has no reader from the start, so the first write meets it.)"""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "cli", "info", str(clip_with_audio)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, cwd=Path(cli.__file__).parent)
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141
