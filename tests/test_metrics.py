"""Metrics on clips with known answers: pure translations, hand-computed flicker, frozen and lagging outputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from coherence.errors import ConfigError, InputError
from coherence.metrics import (
    MetricResult,
    ScoreContext,
    available_metrics,
    get_metric,
    score,
    warping_error,
)
from coherence.metrics.learned import consistency
from generators.artifacts import artifact_preset, degrade

H, W, T = 64, 96, 12


def moving_texture(frames: int = T, *, step: int = 2, seed: int = 0, vertical: bool = False) -> torch.Tensor:
    """A smooth random texture translated by ``step`` whole pixels per frame: ``(T, 3, H, W)`` in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    big = F.avg_pool2d(torch.rand(1, 3, (H + step * frames) // 2 + 8, (W + step * frames) // 2 + 8,
                                  generator=gen), 3, 1, 1)
    big = F.interpolate(big, scale_factor=2, mode="bilinear", align_corners=False)[0]
    if vertical:
        return torch.stack([big[:, step * t:step * t + H, :W] for t in range(frames)])
    return torch.stack([big[:, :H, step * t:step * t + W] for t in range(frames)])


def test_warping_error_is_zero_for_a_known_translation():
    value, per_pair = warping_error(moving_texture())
    assert per_pair.shape == (T - 1,)
    assert value < 1e-4


def test_warping_error_grows_with_degradation():
    clean = moving_texture()
    errors = [warping_error(clean)[0]]
    for strength in (0.5, 1.0, 2.0):
        degraded = degrade(clean, artifact_preset("t2v").scaled(strength), seed=3).clamp(0, 1)
        errors.append(warping_error(degraded, reference=clean)[0])
    assert errors == sorted(errors), errors
    assert errors[-1] > 10 * errors[0] + 1e-4


def test_warping_error_grows_with_degradation_on_a_real_clip():
    from benchmarks.cases import real_clip

    clip = real_clip("bikes", frames=10)
    clean = F.interpolate(clip.frames, size=(68, 160), mode="area")
    weak = degrade(clean, artifact_preset("flicker"), seed=1).clamp(0, 1)
    strong = degrade(clean, artifact_preset("flicker").scaled(2.5), seed=1).clamp(0, 1)
    flows = ScoreContext(clean).flows
    assert warping_error(clean, flows=flows)[0] < warping_error(weak, flows=flows)[0] < \
        warping_error(strong, flows=flows)[0]


def test_temporal_flickering_matches_the_vbench_formula_by_hand():
    levels = torch.tensor([[10, 20], [30, 40]], dtype=torch.float32)
    a = levels.expand(3, 2, 2)
    b = (levels + torch.tensor([[5, -5], [0, 10]])).expand(3, 2, 2)
    c = (levels + 2).expand(3, 2, 2)
    frames = torch.stack([a, b, c]) / 255.0
    # pair 1 |diff| = 5, 5, 0, 10 -> 5; pair 2: |b - c| = 3, 7, 2, 8 -> 5; (255 - 5) / 255
    result = get_metric("temporal_flickering")(frames, context=ScoreContext(frames))
    assert result.value == pytest.approx(250 / 255, abs=1e-6)
    assert result.per_frame.tolist() == pytest.approx([250 / 255, 250 / 255], abs=1e-6)


def test_a_frozen_clip_loses_on_the_guards_despite_perfect_flickering():
    source = moving_texture()
    frozen = source[:1].expand_as(source).clone()
    names = ["temporal_flickering", "motion_kept", "alignment", "freeze_rate"]
    report = score(frozen, source, fps=24, metrics=names)
    honest = score(source, source, fps=24, metrics=names)
    assert report.metrics["temporal_flickering"] == 1.0 > honest.metrics["temporal_flickering"]
    assert report.metrics["motion_kept"] < 0.2
    assert report.metrics["alignment"] < 0.5
    assert report.metrics["freeze_rate"] > 0.9
    assert honest.metrics["alignment"] == 1.0 and honest.metrics["freeze_rate"] == 0.0
    assert honest.metrics["motion_kept"] == pytest.approx(1.0)
    assert report.duplicates == list(range(1, T))


def test_temporal_averaging_loses_alignment_and_sharpness():
    source = moving_texture(vertical=True)
    lagged = source.clone()  # causal exponential average: lag and blur
    for t in range(1, T):
        lagged[t] = 0.5 * lagged[t - 1] + 0.5 * source[t]
    box = source.clone()  # centred 3-frame average: blur without lag
    box[1:-1] = (source[:-2] + source[1:-1] + source[2:]) / 3
    lag = score(lagged, source, fps=24, metrics=["alignment", "sharpness_kept", "psnr", "ssim"])
    blur = score(box, source, fps=24, metrics=["sharpness_kept", "ssim"])
    assert lag.metrics["alignment"] < 0.5
    assert lag.metrics["sharpness_kept"] < 0.8 and blur.metrics["sharpness_kept"] < 0.8
    assert blur.metrics["ssim"] < 0.95 and lag.metrics["psnr"] < 40


def test_reference_of_another_shape_is_refused_with_one_sentence():
    clip = moving_texture()
    with pytest.raises(InputError, match="must have the frame count and size") as info:
        score(clip, clip[:-1], fps=24)
    assert str(info.value).count(".") <= 1
    with pytest.raises(InputError):
        warping_error(clip, reference=clip[..., :-2])
    with pytest.raises(InputError):
        score(clip[:1])


def test_reference_metrics_need_a_reference_and_names_are_checked():
    clip = moving_texture(frames=4)
    with pytest.raises(ConfigError, match="reference"):
        score(clip, fps=24, metrics=["psnr"])
    with pytest.raises(ConfigError, match="unknown metric"):
        score(clip, fps=24, metrics=["nope"])
    assert {"warping_error", "temporal_flickering", "motion_smoothness", "dynamic_degree", "mean_flow", "psnr",
            "ssim", "alignment", "motion_kept", "freeze_rate", "sharpness_kept"} <= set(available_metrics())


def test_pairs_across_a_scene_cut_are_excluded():
    first = moving_texture(frames=6, seed=1) * torch.tensor([1.0, 0.4, 0.2]).view(1, 3, 1, 1)
    second = moving_texture(frames=6, seed=2, vertical=True) * torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1)
    clip = torch.cat([first, second])
    report = score(clip, fps=24, metrics=["warping_error", "temporal_flickering"])
    assert report.cuts == [6]
    assert math.isnan(report.per_frame["warping_error"][5])
    assert math.isnan(report.per_frame["temporal_flickering"][5])
    assert report.metrics["warping_error"] < 1e-4  # the cut would dominate if it were counted


def test_dynamic_degree_follows_the_vbench_count_rule():
    static = moving_texture(step=0, frames=16)
    fast = moving_texture(step=4, frames=16)
    assert score(static, fps=8, metrics=["dynamic_degree"]).metrics["dynamic_degree"] == 0.0
    moving = score(fast, fps=8, metrics=["dynamic_degree", "mean_flow"])
    assert moving.metrics["dynamic_degree"] == 1.0
    assert moving.metrics["mean_flow"] == pytest.approx(4.0, abs=0.5)
    # at 24 fps VBench samples every third frame, so the pairs move three times as far
    sampled = score(fast, fps=24, metrics=["dynamic_degree"])
    assert len(sampled.per_frame["dynamic_degree"]) == 5
    assert sampled.per_frame["dynamic_degree"][0] == pytest.approx(12.0, abs=1.5)


def test_motion_smoothness_prefers_steady_motion():
    steady = moving_texture(step=2)
    jerky = steady.clone()
    jerky[1::2] = moving_texture(step=2, seed=0)[0:T:2][: jerky[1::2].shape[0]]  # odd frames repeat a neighbour
    good = score(steady, fps=24, metrics=["motion_smoothness"]).metrics["motion_smoothness"]
    bad = score(jerky, fps=24, metrics=["motion_smoothness"]).metrics["motion_smoothness"]
    assert good > 0.99 and bad < good - 0.01


def test_report_is_json_ready():
    clip = moving_texture(frames=6)
    data = score(clip, clip, fps=24, path="x.mp4").to_dict()
    assert data["path"] == "x.mp4" and data["frames"] == 6 and data["fps"] == "24"
    assert set(data["metrics"]) >= {"psnr", "warping_error", "alignment"}
    assert len(data["per_frame"]["warping_error"]) == 5
    assert data["metrics"]["psnr"] == 100.0


def test_unavailable_learned_metric_is_skipped_not_faked(monkeypatch):
    import coherence.metrics.learned as learned
    from coherence.errors import DependencyError

    def unavailable() -> None:
        raise DependencyError("the lpips package is not installed (pip install lpips)")

    monkeypatch.setattr(learned, "_load_lpips", unavailable)
    clip = moving_texture(frames=4)
    report = score(clip, clip, fps=24, metrics=["lpips", "psnr"])
    assert math.isnan(report.metrics["lpips"]) and "not installed" in report.skipped["lpips"]
    assert "lpips" not in report.per_frame and report.metrics["psnr"] == 100.0


def test_feature_consistency_follows_vbench():
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    per = consistency(feats, cuts=[3])
    assert math.isnan(per[0]) and math.isnan(per[3])
    assert per[1] == pytest.approx(1.0) and per[2] == pytest.approx(0.0)


def test_a_custom_metric_shares_the_context():
    clip = moving_texture(frames=5)
    calls = []

    def probe(frames, reference, context):
        calls.append(context.flows[0].shape)
        return MetricResult(float(context.motion.mean()))

    from coherence.metrics.base import _REGISTRY, register_metric

    register_metric("probe_motion", direction="neutral", default=False)(probe)
    try:
        report = score(clip, fps=24, metrics=["probe_motion", "mean_flow"])
    finally:
        _REGISTRY.pop("probe_motion")
    assert calls == [(4, 2, H, W)]
    assert report.metrics["probe_motion"] == pytest.approx(report.metrics["mean_flow"])


def test_score_command_prints_json_per_input_and_refuses_a_mismatched_reference(tmp_path, capsys):
    import json

    from cli import main
    from coherence.clip import Clip
    from coherence.io import write_clip

    source = moving_texture(frames=6)
    write_clip(Clip(source, 12), tmp_path / "a.mkv", lossless=True)
    write_clip(Clip(source[:1].expand_as(source).clone(), 12), tmp_path / "frozen.mkv", lossless=True)
    write_clip(Clip(source[:4], 12), tmp_path / "short.mkv", lossless=True)
    args = ["-q", "score", str(tmp_path / "a.mkv"), str(tmp_path / "frozen.mkv"), "--reference",
            str(tmp_path / "a.mkv"), "--json", "--metrics", "temporal_flickering,freeze_rate,psnr"]
    assert main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["path"].endswith(n) for d, n in zip(lines, ("a.mkv", "frozen.mkv"), strict=True)] == [True, True]
    assert lines[0]["frames"] == 6 and lines[0]["fps"] == "12"
    assert lines[0]["metrics"]["freeze_rate"] == 0.0 and lines[1]["metrics"]["freeze_rate"] == 1.0
    assert len(lines[1]["per_frame"]["temporal_flickering"]) == 5
    assert main(["-q", "score", str(tmp_path / "a.mkv"), "--reference", str(tmp_path / "short.mkv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("coherence: error:") and "frame count and size" in err and "\n" not in err
