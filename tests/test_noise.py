"""The noise measurement and the decay it calls for, on frames with known noise."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from benchmarks.smoothing import psnr
from coherence.noise import (
    DECAY_CEILING,
    NOISE_REFERENCE,
    adapted_decay,
    is_palette,
    link_noise,
    noise_gain,
    noise_scale,
)
from coherence.smooth import smooth
from generators.artifacts import Artifacts, degrade
from generators.synthetic import synthetic_clip

LUMA_OF_CHANNEL_NOISE = (0.299**2 + 0.587**2 + 0.114**2) ** 0.5  # luma's share of independent channel noise


@pytest.fixture(scope="module")
def scene() -> torch.Tensor:
    """A textured static frame, (3, 240, 320) in [0, 1]."""
    return synthetic_clip(frames=1, size=(320, 240), seed=5, artifacts=None).clean.frames[0]


@pytest.mark.parametrize("sigma", [2.0, 4.0, 8.0])
def test_link_noise_reads_white_noise_and_not_illumination(scene: torch.Tensor, sigma: float) -> None:
    gen = torch.Generator().manual_seed(int(sigma))
    noisy = [(scene + sigma / 255 * torch.randn(scene.shape, generator=gen)).clamp(0, 1) for _ in range(2)]
    still, held = torch.zeros(1, 2, 240, 320), torch.ones(240, 320)
    reading = link_noise(noisy[0], noisy[1], still, held)
    assert reading == pytest.approx(sigma * LUMA_OF_CHANNEL_NOISE, rel=0.1)
    # a smooth illumination change between the frames is not noise
    field = torch.linspace(0.8, 1.2, 320).expand(240, 320)
    assert link_noise(scene, (scene * field).clamp(0, 1), still, held) < 0.1
    # nor is anything where the trajectory breaks; a trajectory that barely holds anywhere measures nothing
    broken = held.clone()
    broken[:, 160:] = 0
    occluded = noisy[1].clone()
    occluded[..., 160:] = torch.rand(3, 240, 160, generator=gen)
    assert link_noise(noisy[0], occluded, still, held) > 1.5 * reading
    assert link_noise(noisy[0], occluded, still, broken) == pytest.approx(reading, rel=0.15)
    assert link_noise(noisy[0], noisy[1], still, torch.zeros(240, 320)) is None


@pytest.mark.parametrize("shift", [(0.5, 0.5), (0.25, 0.0), (3.7, -1.4)])
def test_link_noise_reads_the_same_noise_through_a_fractional_warp(shift: tuple[float, float]) -> None:
    # the bilinear warp averages the successor's noise, by how far the flow falls between pixels: a pan must not
    # read less noise than a still scene
    gen = torch.Generator().manual_seed(11)
    noisy = (0.5 + 4.0 / 255 * torch.randn(2, 3, 240, 320, generator=gen)).clamp(0, 1)
    flow = torch.tensor(shift).view(1, 2, 1, 1).expand(1, 2, 240, 320).contiguous()
    still = link_noise(noisy[0], noisy[1], torch.zeros(1, 2, 240, 320), torch.ones(240, 320))
    assert still is not None
    assert link_noise(noisy[0], noisy[1], flow, torch.ones(240, 320)) == pytest.approx(still, rel=0.05)


def test_adapted_decay_leaves_the_reference_residue() -> None:
    assert adapted_decay(0.3, None) == 0.3 and adapted_decay(0.3, NOISE_REFERENCE) == 0.3
    assert adapted_decay(0.0, 10.0) == 0.0 and adapted_decay(DECAY_CEILING, 10.0) == DECAY_CEILING
    raised = adapted_decay(0.3, 1.2 * NOISE_REFERENCE)
    assert 0.3 < raised < DECAY_CEILING
    assert noise_gain(raised) * 1.2 * NOISE_REFERENCE == pytest.approx(noise_gain(0.3) * NOISE_REFERENCE, rel=1e-4)
    assert adapted_decay(0.3, 3 * NOISE_REFERENCE) == DECAY_CEILING
    assert noise_gain(0.0) == 1.0 and noise_gain(0.6) < noise_gain(0.3) < noise_gain(0.1)


def test_noise_scale_grows_above_the_reference() -> None:
    assert noise_scale(None) == 1.0 and noise_scale(0.5 * NOISE_REFERENCE) == 1.0
    assert noise_scale(2 * NOISE_REFERENCE) == pytest.approx(2.0)


def test_the_spatial_filters_widen_with_the_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real footage (bikes' third scene, a fast pan past cars) with twice the benchmark's noise: the bilateral
    filters after the trajectory filter, their colour scales grown with the noise, leave less of it from frame to
    frame and come nearer the clean clip than at the presets' scales (measured 1.52e-4 against 1.86e-4 of warping
    error with the clean clip's flow, 35.83 against 34.96 dB)."""
    import importlib

    from benchmarks.cases import real_clip
    from coherence.metrics.warping import warping_error

    clean = real_clip("bikes", frames=112).frames[76:]
    noisy = degrade(clean, Artifacts(noise=8 / 255), seed=1)
    widened = smooth(noisy, fps=25)
    monkeypatch.setattr(importlib.import_module("coherence.smooth_run"), "noise_scale", lambda noise: 1.0)
    kept = smooth(noisy, fps=25)
    assert warping_error(widened, reference=clean)[0] < 0.9 * warping_error(kept, reference=clean)[0]
    assert psnr(widened, clean) > psnr(kept, clean) + 0.5


def test_is_palette(scene: torch.Tensor) -> None:
    assert not is_palette(scene)
    assert is_palette((scene * 5).round() / 5)  # 6 levels per channel: 216 colours at most


def test_a_noisy_clip_is_filtered_longer_and_nearer_the_clean_clip(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    import importlib

    # 640x360: at 320x240 the longer filter and the noise's wider spatial filters together smoothed this scene's
    # texture (0.15 dB under the preset's decay with the wider filters); at 640x360 they gain 0.7 dB over it
    clean = synthetic_clip(frames=14, size=(640, 360), seed=1, artifacts=None).clean.frames
    noisy = degrade(clean, Artifacts(noise=8 / 255), seed=3)
    with caplog.at_level(logging.DEBUG, logger="coherence.smooth_run"):
        adapted = smooth(noisy, fps=24)
        kept = smooth(noisy, fps=24, preset="default")
    reported = re.search(r"trajectory decay (\d\.\d+)", caplog.text)
    assert reported is not None and 0.5 < float(reported.group(1)) <= DECAY_CEILING
    monkeypatch.setattr(importlib.import_module("coherence.smooth_run"), "adapted_decay", lambda decay, noise: decay)
    fixed = smooth(noisy, fps=24)
    assert torch.equal(adapted, kept)
    assert psnr(adapted, clean) > psnr(fixed, clean) + 0.3
    # the same clip at the noise the presets are sized for keeps its decay, and so do a palette clip and a small one
    monkeypatch.undo()
    for frames, reading in ((degrade(clean, Artifacts(noise=2 / 255), seed=3), "noise 1."),
                            ((noisy * 5).round() / 5, "not measured on a palette clip"),
                            (noisy[..., :120, :160], "not measured on a small frame")):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="coherence.smooth_run"):
            smooth(frames, fps=24)
        assert reading in caplog.text and "trajectory decay 0.300" in caplog.text
