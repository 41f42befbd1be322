"""Clips, frame-rate parsing and the uint8 <-> float conversion used at the I/O edges.

Convention (everywhere in coherence): a frame is a ``torch.float32`` tensor of shape ``(3, H, W)`` with values in
``[0, 1]``, RGB, channels first; a clip is ``(T, 3, H, W)``. uint8 ``(H, W, 3)`` numpy arrays exist only where
frames enter or leave the process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import cv2
import numpy as np
import torch

from coherence.errors import ConfigError, InputError

DEFAULT_FPS = Fraction(24)

# Rates that containers store rounded (29.97...) but that are exactly n*1000/1001.
_NTSC_BASES = (24, 30, 48, 60, 120)


def parse_fps(value: str | float | int | Fraction) -> Fraction:
    """Parse a frame rate given as ``"30000/1001"``, ``"29.97"``, ``24`` or a Fraction.

    Decimal spellings of the NTSC rates (23.976, 29.97, 59.94...) are snapped to their exact ``n*1000/1001``
    value so that a rate typed by hand and the rate a container stores compare equal.

    Raises:
        ConfigError: the value is not a positive, finite rate.
    """
    try:
        fps = Fraction(value) if not isinstance(value, str) else Fraction(value.strip())
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        raise ConfigError(f"invalid frame rate {value!r}: use a number such as 24 or a ratio such as 30000/1001"
                          ) from exc
    if fps <= 0 or fps > 1000:
        raise ConfigError(f"invalid frame rate {value!r}: it must be between 0 and 1000 frames per second")
    if fps.denominator != 1 and fps.denominator != 1001:
        for base in _NTSC_BASES:
            ntsc = Fraction(base * 1000, 1001)
            if abs(float(fps) - float(ntsc)) < 0.006:
                return ntsc
        fps = fps.limit_denominator(1_000_000)
    return fps


def frame_from_uint8(array: np.ndarray) -> torch.Tensor:
    """Convert one ``(H, W, 3)`` uint8 RGB array to a ``(3, H, W)`` float32 frame in [0, 1]."""
    # the channel transpose is done by numpy on uint8: torch's strided copies are many times slower on a busy CPU
    planar = np.ascontiguousarray(array.transpose(2, 0, 1))
    return torch.from_numpy(np.divide(planar, np.float32(255), dtype=np.float32))


def frame_to_uint8(frame: torch.Tensor) -> np.ndarray:
    """Convert a ``(3, H, W)`` float frame in [0, 1] to an ``(H, W, 3)`` uint8 RGB array (rounded, clamped)."""
    if frame.ndim != 3 or frame.shape[0] != 3:
        raise InputError(f"expected a frame of shape (3, H, W), got {tuple(frame.shape)}")
    # OpenCV interleaves the planes, then scales, rounds and saturates, in one pass each: numpy's strided arithmetic
    # on the transposed planes took about ten times as long (3 ms a 640x360 frame, on the thread that writes). A
    # frame that is a channels-last image seen as planes (the smoother's output) is interleaved already.
    planes = frame.detach().float().cpu().clamp(0.0, 1.0).numpy()
    image = planes.transpose(1, 2, 0)
    return cv2.convertScaleAbs(image if image.flags.c_contiguous else cv2.merge(list(planes)), alpha=255.0)


def stack_frames(frames: Iterable[torch.Tensor]) -> torch.Tensor:
    """Stack ``(3, H, W)`` frames into a ``(T, 3, H, W)`` clip tensor, checking that sizes agree."""
    frames = list(frames)
    if not frames:
        raise InputError("the clip has no frames")
    size = frames[0].shape
    for i, f in enumerate(frames):
        if f.shape != size:
            raise InputError(f"frame {i} has size {tuple(f.shape)} but frame 0 has {tuple(size)}")
    return torch.stack(frames)


@dataclass
class Clip:
    """A short clip held in memory.

    Attributes:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        fps: exact frame rate.
        metadata: free-form facts about where the clip came from (source path, generator, seed...).
    """

    frames: torch.Tensor
    fps: Fraction = DEFAULT_FPS
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[1] != 3:
            raise InputError(f"a clip must have shape (T, 3, H, W), got {tuple(self.frames.shape)}")
        if self.frames.shape[0] == 0:
            raise InputError("the clip has no frames")
        self.fps = parse_fps(self.fps)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.frames.shape[3]), int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        """Length in seconds (frames / fps)."""
        return float(len(self) / self.fps)
