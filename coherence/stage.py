"""The ``Stage`` protocol: one step of a streaming pipeline (smoother, deflicker, latent blender, interpolator).

A stage turns an iterator of frames into an iterator of frames. It keeps only the window of frames it needs
(``radius`` frames behind and ahead) and yields each output as soon as it can, so memory does not grow with the
length of the clip. Stages that change the frame rate say so through :meth:`Stage.output_fps`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Stage(Protocol):
    """A streaming frame transform.

    Attributes:
        name: short name for logs and reports.
        radius: frames of context kept on each side (the window is ``2 * radius + 1``).
    """

    name: str
    radius: int

    def output_fps(self, fps: Fraction) -> Fraction:
        """Frame rate of the output for an input at ``fps``."""
        ...

    def process(self, frames: Iterable[torch.Tensor], fps: Fraction) -> Iterator[torch.Tensor]:
        """Transform a stream of ``(3, H, W)`` float32 frames in [0, 1] into another such stream."""
        ...
