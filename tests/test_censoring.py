"""Censored samples: clipped pixels that the illumination correction moved off the clip."""

from __future__ import annotations

import pytest
import torch

import coherence.smooth_run
from coherence.censoring import (
    CENSORED_DECAY,
    CENSORED_WEIGHT,
    Censored,
    censored_link_weights,
    find_censored,
    own_weights,
)
from coherence.smooth import smooth
from coherence.trajectory import homogeneous, trajectory_offset, trajectory_step
from generators.artifacts import Artifacts, degrade
from generators.synthetic import synthetic_clip


def _frame_with_clipped_patch() -> torch.Tensor:
    frame = torch.full((3, 8, 10), 0.5)
    frame[:, 2:5, 3:7] = 1.0  # clipped high
    frame[0, 6:8, 0:2] = 1.0  # clipped in one channel
    frame[:, 0, 9] = 0.0  # clipped low: the correction scales x + 0.02, so black stays near black
    return frame


def _mask(censored: Censored) -> torch.Tensor:
    mask = torch.zeros(8, 10, dtype=torch.bool)
    mask[censored.rows, censored.cols] = True
    return mask


def test_only_clipped_pixels_the_correction_darkened_are_censored() -> None:
    frame = _frame_with_clipped_patch()
    assert find_censored(frame, frame) is None  # saturated content that nothing corrected stays a sample
    assert find_censored(frame, (frame * 1.1).clamp(0, 1)) is None  # brightened: still clipped, still a sample
    darker = find_censored(frame, frame * 0.9)
    assert darker is not None
    mask = _mask(darker)
    assert mask.sum() == 16 and mask[2:5, 3:7].all() and mask[6:8, 0:2].all()
    weights = own_weights(darker, (8, 10))
    assert weights[3, 4] == CENSORED_WEIGHT and weights[0, 0] == 1.0
    assert float(weights.sum()) == pytest.approx(64 + 16 * CENSORED_WEIGHT)


def test_a_censored_pixel_takes_the_neighbours_that_agree_with_its_bound() -> None:
    frame = _frame_with_clipped_patch()
    corrected = frame * 0.9
    censored = find_censored(frame, corrected)
    assert censored is not None
    mask = _mask(censored)
    shift = torch.zeros(1, 2, 8, 10)
    shift[:, 0] = 1.0  # the neighbour's content sits one pixel to the right
    occluded = torch.zeros(8, 10, 1)  # the occlusion tests cut every trajectory
    brighter = (corrected + 0.05).roll(1, dims=-1)
    taken = censored_link_weights(occluded, censored, corrected, brighter, shift, decay=0.3)
    # with its own sample all but out, a censored pixel reaches further along its trajectories than the filter
    assert torch.allclose(taken[..., 0], mask.float() * CENSORED_DECAY)
    assert torch.allclose(censored_link_weights(occluded, censored, corrected, brighter, shift, decay=0.9)[..., 0],
                          mask.float() * 0.9)
    assert not censored_link_weights(occluded, censored, corrected, brighter, shift, decay=0.0).any()
    darker = corrected - 0.3
    passed = torch.full((8, 10, 1), 0.3)  # the occlusion tests pass everywhere
    refused = censored_link_weights(passed, censored, corrected, darker, shift, decay=0.3)
    assert torch.allclose(refused[..., 0], (~mask).float() * 0.3)
    assert censored_link_weights(passed, None, corrected, darker, shift, decay=0.3) is passed


@pytest.fixture(scope="module")
def bright() -> torch.Tensor:
    """A clean clip whose highlights sit just below white, where a gain above 1 clips them."""
    return synthetic_clip(frames=24, size=(96, 64), seed=3, artifacts=None, pan=0.5, speed=0.7).clean.frames \
        * 0.5 + 0.47


def test_clipping_flicker_drove_in_is_filled_from_the_trajectories(bright: torch.Tensor,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    degraded = torch.cat([degrade(bright, Artifacts(gain=0.15, noise=2 / 255), seed=seed) for seed in (1, 4)])
    clipped = (degraded >= 254 / 255).any(1, keepdim=True).expand_as(degraded)
    truth = torch.cat([bright, bright])
    assert clipped.float().mean() > 0.04

    def errors(out: torch.Tensor) -> tuple[float, float]:
        return float((out - truth)[clipped].square().mean()), float((out - truth).square().mean())

    with_bound = errors(torch.cat([smooth(clip, fps=24) for clip in degraded.split(24)]))
    monkeypatch.setattr(coherence.smooth_run, "find_censored", lambda frame, corrected: None)
    as_samples = errors(torch.cat([smooth(clip, fps=24) for clip in degraded.split(24)]))
    assert with_bound[0] < 0.8 * as_samples[0]
    assert with_bound[1] < as_samples[1]


def test_shake_is_read_the_same_whatever_the_frame_s_own_weight() -> None:
    frame = torch.rand(3, 16, 20, generator=torch.Generator().manual_seed(0))
    to_either = torch.zeros(1, 2, 16, 20)
    to_either[:, 0] = 1.0  # both neighbours see the frame's content one pixel to the right: it sits one pixel off
    neighbour = homogeneous(frame, geometry=True)
    link = torch.full((16, 20, 1), 0.3)
    for weight in (None, torch.full((16, 20), CENSORED_WEIGHT)):
        own = homogeneous(frame, weight=weight, geometry=True)
        forward = trajectory_step(own, neighbour, to_either, link)
        backward = trajectory_step(own, neighbour, to_either, link)
        dx, dy = trajectory_offset(forward, backward, own, limit=3.0)
        assert dx == pytest.approx(1.0, abs=1e-4) and dy == pytest.approx(0.0, abs=1e-4)
