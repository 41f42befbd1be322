"""The benchmark suite on a tiny case: adversarial baselines must lose to our smoother on the verdict."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.cases import quantise
from benchmarks.methods import all_methods, brightness_norm, frame_hold, spatial_blur, temporal_average
from benchmarks.runner import markdown_summary, run_case, summarise, unbeaten_baselines
from benchmarks.smoothing import artifacts_of
from benchmarks.suite import Case, verdict
from generators.artifacts import artifact_preset
from generators.synthetic import synthetic_clip


@pytest.fixture(scope="module")
def tiny_rows():
    sample = synthetic_clip(frames=12, size=(128, 80), seed=5, artifacts="t2v")
    case = Case("tiny", "synthetic", quantise(sample.degraded.frames), sample.clean.frames, sample.clean.fps,
                True, "tiny synthetic")
    methods = [m for m in all_methods(quick=True) if m.name != "ffmpeg_tmix"]
    return run_case(case, methods)


def test_adversarial_baselines_lose_to_our_smoother(tiny_rows):
    by_method = {r["method"]: r for r in tiny_rows}
    ours = by_method["ours_default"]
    assert not ours["failed"] and ours["stability_gain"] > 0.2
    for name in ("temporal_average", "frame_hold", "spatial_blur", "brightness_norm"):
        assert by_method[name]["combined"] < ours["combined"], (name, by_method[name])
    assert "freeze" in by_method["frame_hold"]["failed"]
    assert "sharpness" in by_method["spatial_blur"]["failed"]
    assert "alignment" in by_method["temporal_average"]["failed"]
    assert by_method["input"]["combined"] == 0.0


def test_summary_has_one_row_per_method_and_speed_ratios(tiny_rows):
    summary = summarise(tiny_rows)
    assert [s["method"] for s in summary] == [r["method"] for r in tiny_rows]
    assert next(s for s in summary if s["method"] == "ffmpeg_deflicker")["speed_vs_ffmpeg"] == pytest.approx(1.0)
    assert unbeaten_baselines(summary) == []
    table = markdown_summary(summary)
    assert table.count("\n") == len(summary) + 1 and "ours_default" in table
    json.dumps([{k: v for k, v in r.items()} for r in tiny_rows])


def test_verdict_needs_every_guard():
    base = {"warping_error_ref": 0.01, "alignment": 1.0, "freeze_rate": 0.0, "motion_kept": 1.0,
            "sharpness_kept": 0.8, "psnr": 25.0, "ssim": 0.9}
    good = {**base, "warping_error_ref": 0.004, "psnr": 27.0}
    assert verdict(good, base, has_truth=True) == (pytest.approx(0.6), [], pytest.approx(0.6))
    frozen = {**good, "freeze_rate": 0.5, "motion_kept": 0.1, "alignment": 0.3}
    gain, failed, combined = verdict(frozen, base, has_truth=True)
    assert failed == ["alignment", "freeze", "motion"] and combined == -1.0
    blurred = {**good, "sharpness_kept": 0.3, "psnr": 24.0}
    assert verdict(blurred, base, has_truth=True)[1] == ["sharpness", "fidelity"]
    static = {**good, "alignment": math.nan, "freeze_rate": math.nan, "ssim": 0.7}
    assert verdict(static, base, has_truth=False)[1] == ["fidelity"]


def test_baselines_do_what_they_say():
    sample = synthetic_clip(frames=6, size=(64, 48), seed=1, artifacts="flicker")
    frames, fps = sample.degraded.frames, sample.degraded.fps
    held = frame_hold(frames, fps)
    assert (held[1] == held[0]).all() and (held[3] == frames[3]).all()
    assert (temporal_average(frames, fps)[0] == frames[0]).all()
    means = brightness_norm(frames, fps).mean((2, 3))
    assert (means - means.mean(0)).abs().max() < 1e-3
    assert spatial_blur(frames, fps).diff(dim=-1).abs().mean() < frames.diff(dim=-1).abs().mean()


def test_frame_drop_ranks_motion_compensation_above_repetition():
    from benchmarks.frame_drop import frame_drop_rows

    sample = synthetic_clip(frames=9, size=(96, 64), seed=2, artifacts=None)
    rows = {r["method"]: r for r in frame_drop_rows("tiny", sample.clean.frames, sample.clean.fps)}
    assert {"repeat", "blend", "ours_interpolate", "ffmpeg_framerate"} <= set(rows)
    assert rows["ours_interpolate"]["psnr"] > rows["blend"]["psnr"] > rows["repeat"]["psnr"]
    assert all(r["frames"] >= 3 for r in rows.values())


def test_the_smoothing_benchmark_scales_the_issues_artefacts():
    """``--stronger`` cases: ``NAME*FACTOR`` is the preset with every strength scaled, ``NAME`` the preset."""
    assert artifacts_of("flicker") == artifact_preset("flicker")
    stronger = artifacts_of("flicker*1.5")
    assert stronger.noise == pytest.approx(1.5 * artifact_preset("flicker").noise)
    assert stronger.gain == pytest.approx(0.15) and stronger.flicker_grid == (4, 6)
