"""The trajectory filter's spatial fallback, on a real frame and on synthetic clips with known ground truth."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks.smoothing import psnr
from coherence.fallback import bilateral_torch, full_support, spatial_fallback
from coherence.smooth import smooth
from coherence.smooth_presets import SMOOTH_PRESETS
from generators.artifacts import Artifacts, degrade
from generators.synthetic import synthetic_clip

DECAY, SIGMA = 0.31, 16.0


def detail(frames: torch.Tensor) -> float:
    """Mean absolute horizontal difference."""
    return float((frames[..., 1:] - frames[..., :-1]).abs().mean())


def edge_energy(frame: torch.Tensor, edges: torch.Tensor) -> float:
    """Mean absolute horizontal and vertical difference at the ``edges`` pixels of a ``(3, H, W)`` frame."""
    dx = (frame[:, :-1, 1:] - frame[:, :-1, :-1]).abs().mean(0)
    dy = (frame[:, 1:, :-1] - frame[:, :-1, :-1]).abs().mean(0)
    return float((dx + dy)[edges].mean())


def test_full_support_is_the_sum_of_an_unbroken_trajectorys_weights() -> None:
    assert full_support(DECAY) == pytest.approx(1 + 2 * sum(DECAY**k for k in range(1, 200)))


def test_a_pixel_with_only_its_own_sample_is_denoised_and_its_edges_kept(bikes_frame: torch.Tensor) -> None:
    noisy = degrade(bikes_frame[None], Artifacts(noise=4 / 255), seed=0)[0]
    alone = torch.ones(bikes_frame.shape[-2:])
    out = spatial_fallback(noisy, alone, decay=DECAY, sigma=SIGMA)
    assert psnr(out, bikes_frame) > psnr(noisy, bikes_frame) + 1.5
    # the strongest tenth of the clean frame's edges: the bilateral filter keeps them, a blur would not
    energy = (bikes_frame[:, :-1, 1:] - bikes_frame[:, :-1, :-1]).abs().mean(0) + \
        (bikes_frame[:, 1:, :-1] - bikes_frame[:, :-1, :-1]).abs().mean(0)
    edges = energy > energy.quantile(0.9)
    blurred = torch.nn.functional.avg_pool2d(noisy[None], 3, 1, 1, count_include_pad=False)[0]
    assert edge_energy(out, edges) > 0.85 * edge_energy(bikes_frame, edges)
    assert edge_energy(blurred, edges) < 0.8 * edge_energy(bikes_frame, edges)


def test_the_blend_follows_the_missing_support(bikes_frame: torch.Tensor) -> None:
    noisy = degrade(bikes_frame[None], Artifacts(noise=4 / 255), seed=1)[0]
    full = full_support(DECAY)
    alone = spatial_fallback(noisy, torch.ones(noisy.shape[-2:]), decay=DECAY, sigma=SIGMA)
    # full support (or more, as censored pixels can get) keeps the temporal value exactly
    for support in (full, full + 1.0):
        kept = spatial_fallback(noisy, torch.full(noisy.shape[-2:], support), decay=DECAY, sigma=SIGMA)
        torch.testing.assert_close(kept, noisy, atol=1e-6, rtol=0)
    half = spatial_fallback(noisy, torch.full(noisy.shape[-2:], (1 + full) / 2), decay=DECAY, sigma=SIGMA)
    torch.testing.assert_close(half, (noisy + alone) / 2, atol=1e-5, rtol=0)
    scaled = spatial_fallback(noisy, torch.ones(noisy.shape[-2:]), decay=DECAY, sigma=SIGMA, strength=0.5)
    torch.testing.assert_close(scaled, half, atol=1e-5, rtol=0)


@pytest.mark.parametrize("off", [{"sigma": 0.0}, {"decay": 0.0}, {"strength": 0.0}])
def test_off_returns_the_frame(bikes_frame: torch.Tensor, off: dict[str, float]) -> None:
    options = {"decay": DECAY, "sigma": SIGMA, "strength": 1.0, **off}
    assert spatial_fallback(bikes_frame, torch.ones(bikes_frame.shape[-2:]), **options) is bikes_frame


def test_smoothing_gains_where_trajectories_break(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast, many-object motion breaks many trajectories; the fallback takes the noise down there without
    blurring the clip (the output stays nearer the clean clip than with no fallback)."""
    clip = synthetic_clip(frames=12, size=(128, 96), seed=4, artifacts=Artifacts(noise=6 / 255), objects=8,
                          speed=6.0, pan=3.0)
    clean, degraded = clip.clean.frames, clip.degraded.frames
    with_fallback = smooth(degraded)
    monkeypatch.setitem(SMOOTH_PRESETS, "default", dataclasses.replace(SMOOTH_PRESETS["default"], spatial=0.0))
    without = smooth(degraded)
    assert psnr(with_fallback, clean) > psnr(without, clean) + 0.3
    # not a blur: the detail of the clean clip is kept
    assert detail(with_fallback) > 0.9 * detail(clean)


def test_the_off_cpu_bilateral_matches_opencvs(bikes_frame: torch.Tensor) -> None:
    """The torch filter (the one used on a GPU), run here on the CPU, against OpenCV's on the same noisy frame:
    both filter the noise, and they agree far more closely than either is to its input."""
    noisy = degrade(bikes_frame[None], Artifacts(noise=4 / 255), seed=2)[0]
    # a pixel with only its own sample takes the CPU path's (OpenCV's) bilateral value
    opencv = spatial_fallback(noisy, torch.ones(noisy.shape[-2:]), decay=DECAY, sigma=SIGMA)
    torch_path = bilateral_torch(noisy, SIGMA)
    assert psnr(opencv, bikes_frame) > psnr(noisy, bikes_frame) + 1.5
    assert psnr(torch_path, bikes_frame) > psnr(noisy, bikes_frame) + 1.5
    assert psnr(torch_path, opencv) > psnr(opencv, noisy) + 8
