"""A stage that scales frames down so that their longer side fits a limit (area averaging, aspect kept)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction

import torch
import torch.nn.functional as F

from coherence.errors import ConfigError


def fitted_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """``(H, W)`` scaled so that ``max(H, W) <= max_side``, aspect kept, never upscaled."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class Resize:
    """Downscale each ``(3, H, W)`` frame so that its longer side is at most ``max_side`` pixels."""

    name = "resize"
    radius = 0

    def __init__(self, *, max_side: int) -> None:
        if max_side < 8:
            raise ConfigError(f"--max-size must be at least 8 pixels, got {max_side}")
        self.max_side = max_side

    def output_fps(self, fps: Fraction) -> Fraction:
        return fps

    def process(self, frames: Iterable[torch.Tensor], fps: Fraction) -> Iterator[torch.Tensor]:
        for frame in frames:
            size = fitted_size(frame.shape[-2], frame.shape[-1], self.max_side)
            if size == tuple(frame.shape[-2:]):
                yield frame
            else:
                yield F.interpolate(frame[None], size=size, mode="area")[0].clamp_(0, 1)
