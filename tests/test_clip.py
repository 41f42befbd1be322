"""Clip conventions and frame-rate parsing."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from coherence.clip import Clip, frame_from_uint8, frame_to_uint8, parse_fps
from coherence.errors import ConfigError, InputError


@pytest.mark.parametrize(("text", "expected"), [("30000/1001", Fraction(30000, 1001)), ("29.97", Fraction(30000, 1001)),
                                                ("23.976", Fraction(24000, 1001)), ("24", Fraction(24)),
                                                (7.5, Fraction(15, 2)), ("100/13", Fraction(100, 13))])
def test_parse_fps_is_exact(text: str | float, expected: Fraction) -> None:
    assert parse_fps(text) == expected


@pytest.mark.parametrize("bad", ["abc", "0", "-3", "1/0", "5000"])
def test_parse_fps_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_fps(bad)


def test_uint8_round_trip_is_exact() -> None:
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    frame = frame_from_uint8(array)
    assert frame.shape == (3, 5, 7) and frame.dtype == torch.float32
    assert np.array_equal(frame_to_uint8(frame), array)
    # the same frame as a view of a channels-last array (as the smoother hands them on), out-of-range values included
    channels_last = frame.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    channels_last[0, 0, 0], channels_last[1, 0, 0] = -0.2, 1.3
    expected = array.copy()
    expected[0, 0, :2] = 0, 255
    assert not channels_last.is_contiguous() and np.array_equal(frame_to_uint8(channels_last), expected)


def test_clip_validates_shape() -> None:
    with pytest.raises(InputError):
        Clip(torch.zeros(4, 1, 8, 8))
    clip = Clip(torch.zeros(4, 3, 8, 10), "30000/1001")
    assert len(clip) == 4 and clip.size == (10, 8) and abs(clip.duration - 4 * 1001 / 30000) < 1e-12
