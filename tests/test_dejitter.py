"""The shake queue: frames wait for their neighbours' shifts and leave moved back by what those do not share."""

from __future__ import annotations

import pytest
import torch

from coherence.dejitter import ShakeQueue

H, W = 12, 40


def _ramp() -> torch.Tensor:
    """A channels-last accumulator ``(H, W, 4)`` whose colour is the x coordinate / W, weight 1."""
    x = torch.arange(W, dtype=torch.float32).div(W).expand(H, W)
    return torch.stack((x, x, x, torch.ones(H, W)), dim=-1).contiguous()


def test_a_lone_shift_is_undone_and_a_shared_one_kept() -> None:
    queue = ShakeQueue(span=2)
    shifts = [0.5, 0.5, 0.5, 1.5, 0.5, 0.5, 0.5]  # every frame 0.5 px off (motion's curvature), frame 3 shaken
    released = []
    for t, dx in enumerate(shifts):
        queue.add(t, 0, _ramp(), (dx, 0.0))
        released += list(queue.release(finished=False))
        assert len(released) == max(0, t - 1)  # a frame leaves once the shifts of 2 more frames are known
    released += list(queue.release(finished=True))
    assert len(released) == len(shifts)
    inner = (slice(None), slice(4, -4), 0)
    # frame 3 is 1.5 - 0.7 px off its neighbours' mean: it is sampled that far to the left
    torch.testing.assert_close(released[3][inner], _ramp()[inner] - 0.8 / W, atol=1e-5, rtol=0)
    # frame 6's neighbours in reach share its shift: it leaves as it came
    torch.testing.assert_close(released[6], _ramp())


def test_a_scene_ends_the_wait_and_is_not_averaged_across() -> None:
    queue = ShakeQueue(span=2)
    queue.add(0, 0, _ramp(), (0.0, 0.0))
    queue.add(1, 0, _ramp(), (1.0, 0.0))
    assert list(queue.release(finished=False)) == []
    queue.add(2, 1, _ramp(), (5.0, 0.0))  # a cut: frames 0 and 1 need no later shift of their scene
    first, second = list(queue.release(finished=False))
    inner = (slice(None), slice(4, -4), 0)
    torch.testing.assert_close(first[inner], _ramp()[inner] + 0.5 / W, atol=1e-5, rtol=0)
    torch.testing.assert_close(second[inner], _ramp()[inner] - 0.5 / W, atol=1e-5, rtol=0)
    (third,) = list(queue.release(finished=True))
    torch.testing.assert_close(third, _ramp())  # alone in its scene: nothing to tell shake from


@pytest.mark.parametrize("channels", [4, 7])
def test_span_zero_releases_at_once_unmoved(channels: int) -> None:
    queue = ShakeQueue(span=0)
    accumulator = torch.rand(H, W, channels)
    queue.add(0, 0, accumulator, (0.0, 0.0))
    (out,) = list(queue.release(finished=False))
    assert out is accumulator
