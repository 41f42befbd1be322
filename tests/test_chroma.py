"""Chroma denoising, on a real frame and on a synthetic clip with known ground truth."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks.smoothing import psnr
from coherence.chroma import denoise_chroma, denoise_chroma_torch
from coherence.smooth import smooth
from coherence.smooth_presets import SMOOTH_PRESETS
from generators.artifacts import Artifacts, degrade
from generators.synthetic import synthetic_clip

SIGMA = 4.0
# BT.601 luma and colour-difference weights
LUMA = torch.tensor([0.299, 0.587, 0.114])
CHROMA = torch.tensor([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def planes(frame: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB -> ``(..., K, H, W)`` planes of a ``(K, 3)`` (or ``(3,)``) weight matrix."""
    return torch.einsum("kc,...chw->...khw", weights.reshape(-1, 3), frame)


def test_chroma_noise_goes_and_luma_stays(bikes_frame: torch.Tensor) -> None:
    noisy = degrade(bikes_frame[None], Artifacts(noise=4 / 255), seed=0)[0]
    out = denoise_chroma(noisy, SIGMA)
    # luma untouched (up to the colour conversions' rounding and clipping to [0, 1]; a 3x3 box blur changes it by
    # 0.009 on average), chroma nearer the clean frame's
    assert (planes(out, LUMA) - planes(noisy, LUMA)).abs().mean() < 1e-4
    assert psnr(planes(out, CHROMA), planes(bikes_frame, CHROMA)) > \
        psnr(planes(noisy, CHROMA), planes(bikes_frame, CHROMA)) + 2.0
    assert psnr(out, bikes_frame) > psnr(noisy, bikes_frame) + 1.0


def test_a_colour_edge_stays_sharp() -> None:
    """Red beside blue (a colour edge of ~0.5 in Cr and Cb) with noise: the edge keeps its full step."""
    clean = torch.zeros(3, 64, 64)
    clean[0, :, :32], clean[2, :, 32:] = 0.8, 0.8
    noisy = degrade(clean[None], Artifacts(noise=4 / 255), seed=2)[0]
    out = denoise_chroma(noisy, SIGMA)
    step = (out[:, :, 31] - out[:, :, 32]).mean(1)
    assert torch.allclose(step, clean[:, 0, 31] - clean[:, 0, 32], atol=0.02)
    assert psnr(out, clean) > psnr(noisy, clean) + 1.5


def test_sigma_zero_returns_the_frame(bikes_frame: torch.Tensor) -> None:
    assert denoise_chroma(bikes_frame, 0.0) is bikes_frame


def test_the_torch_filter_matches_opencvs(bikes_frame: torch.Tensor) -> None:
    """The GPU path's filter, run on the CPU: it denoises as OpenCV's does, and the two agree far more closely than
    either does with its input (kornia's neighbourhood is the 3x3 square, OpenCV's the cross inside it)."""
    noisy = degrade(bikes_frame[None], Artifacts(noise=4 / 255), seed=3)[0]
    opencv, kornia = denoise_chroma(noisy, SIGMA), denoise_chroma_torch(noisy, SIGMA)
    assert psnr(kornia, bikes_frame) > psnr(noisy, bikes_frame) + 1.0
    assert psnr(kornia, opencv) > psnr(opencv, noisy) + 5.0


def test_smoothing_with_the_chroma_filter_is_nearer_the_clean_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Noise in R, G and B on a moving synthetic clip: the chroma filter takes the output nearer the clean clip and
    keeps its detail."""
    clip = synthetic_clip(frames=12, size=(128, 96), seed=0, artifacts=Artifacts(noise=6 / 255))
    clean, degraded = clip.clean.frames, clip.degraded.frames
    with_chroma = smooth(degraded)
    monkeypatch.setitem(SMOOTH_PRESETS, "default", dataclasses.replace(SMOOTH_PRESETS["default"], chroma=0.0))
    without = smooth(degraded)
    assert psnr(with_chroma, clean) > psnr(without, clean) + 0.3
    luma_detail = planes(with_chroma, LUMA).diff(dim=-1).abs().mean()
    assert luma_detail > 0.95 * planes(without, LUMA).diff(dim=-1).abs().mean()
