"""The ``Stage`` protocol: one step of a streaming pipeline (smoother, deflicker, latent blender, interpolator).

A stage turns an iterator of frames into an iterator of frames. It keeps only the window of frames it needs
(``radius`` frames behind and ahead) and yields each output as soon as it can, so memory does not grow with the
length of the clip. Stages that change the frame rate say so through :meth:`Stage.output_fps`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from coherence.errors import InputError


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


def min_frames(stage: Stage) -> int:
    """How many frames ``stage`` needs: its ``min_frames`` attribute when it has one, else 2 for a temporal stage
    (one with a window, ``radius > 0``, or one that changes the frame rate) and 1 for a per-frame stage."""
    declared = getattr(stage, "min_frames", None)
    if declared is not None:
        return int(declared)
    probe_rate = Fraction(24)
    return 2 if stage.radius > 0 or stage.output_fps(probe_rate) != probe_rate else 1


def check_frame_count(stages: Iterable[Stage], frames: int, *, source: str | Path = "the input") -> None:
    """Refuse, with one sentence, a source too short for one of ``stages`` (a one-frame clip for a smoother).

    Raises:
        InputError: ``frames`` is below what a stage needs.
    """
    for stage in stages:
        needed = min_frames(stage)
        if frames < needed:
            raise InputError(f"{source}: {stage.name} needs at least {needed} frames, the input has {frames}")


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device from a name; ``"auto"`` is CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
