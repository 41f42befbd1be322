"""Models of the frame-to-frame artefacts that text-to-video generators produce, applied to clean frames.

Each artefact has a strength (0 turns it off) and is drawn independently per frame from a generator seeded by
``(seed, frame index)``, so a degraded clip is deterministic and can be produced frame by frame (streaming).

- ``gain``: per-frame global brightness gain ``~ N(1, gain)`` (exposure flicker).
- ``cast``: per-frame, per-channel gain ``~ N(1, cast)`` (colour flicker).
- ``local_flicker``: a smooth multiplicative field, a ``flicker_grid`` of ``N(1, local_flicker)`` control points
  upsampled bicubically to the frame (regional flicker).
- ``boiling``: temporally independent high-frequency displacement of textures (pixels of amplitude; a random
  field with a correlation length of a few pixels), the "boiling" of generated detail.
- ``jitter``: per-frame global sub-pixel translation ``~ N(0, jitter)`` pixels (geometric jitter).
- ``noise``: additive Gaussian noise of standard deviation ``noise`` (in [0, 1] units).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from coherence.errors import ConfigError
from coherence.flow.ops import warp


@dataclass(frozen=True)
class Artifacts:
    """Strengths of each artefact model (see the module docstring); all zero means clean."""

    gain: float = 0.0
    cast: float = 0.0
    local_flicker: float = 0.0
    flicker_grid: tuple[int, int] = (4, 6)
    boiling: float = 0.0
    jitter: float = 0.0
    noise: float = 0.0

    def scaled(self, factor: float) -> Artifacts:
        """The same mix with every strength multiplied by ``factor``."""
        return replace(self, gain=self.gain * factor, cast=self.cast * factor,
                       local_flicker=self.local_flicker * factor, boiling=self.boiling * factor,
                       jitter=self.jitter * factor, noise=self.noise * factor)


PRESETS: dict[str, Artifacts] = {
    # the benchmark protocol of the smoothing target: illumination/colour flicker and sensor-like noise
    "flicker": Artifacts(gain=0.10, cast=0.04, local_flicker=0.06, noise=4 / 255),
    # what a typical text-to-video clip shows: all of it, moderately
    "t2v": Artifacts(gain=0.06, cast=0.03, local_flicker=0.05, boiling=0.6, jitter=0.3, noise=2 / 255),
    "strong": Artifacts(gain=0.15, cast=0.06, local_flicker=0.09, boiling=1.0, jitter=0.6, noise=6 / 255),
}


def artifact_preset(name: str) -> Artifacts:
    """A named mix: ``flicker`` (the benchmark degradation), ``t2v`` (typical) or ``strong``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown artefact preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def _frame_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + index * 7919) % (2**63))


def _smooth_field(gen: torch.Generator, grid: tuple[int, int], size: tuple[int, int], channels: int) -> torch.Tensor:
    """Unit-variance random field on a ``grid`` of control points, bicubically upsampled: ``(1, C, H, W)``."""
    ctrl = torch.randn(1, channels, *grid, generator=gen)
    return F.interpolate(ctrl, size=size, mode="bicubic", align_corners=True)


def degrade_frame(frame: torch.Tensor, artifacts: Artifacts, *, seed: int, index: int) -> torch.Tensor:
    """Apply the artefacts of frame ``index`` to one clean frame.

    Args:
        frame: ``(3, H, W)`` float32 in [0, 1].
        artifacts: strengths.
        seed: clip seed; with ``index`` it fixes every random draw.
        index: frame index in the clip.

    Returns:
        ``(3, H, W)`` float32 in [0, 1].
    """
    gen = _frame_generator(seed, index)
    # draw everything in a fixed order so that turning one artefact off leaves the others' draws unchanged
    gain = 1.0 + artifacts.gain * torch.randn((), generator=gen)
    cast = 1.0 + artifacts.cast * torch.randn(3, 1, 1, generator=gen)
    _, h, w = frame.shape
    field = 1.0 + artifacts.local_flicker * _smooth_field(gen, artifacts.flicker_grid, (h, w), 1)[0]
    boil = _smooth_field(gen, (max(2, h // 4), max(2, w // 4)), (h, w), 2)
    shift = artifacts.jitter * torch.randn(2, 1, 1, generator=gen)
    noise = torch.randn(frame.shape, generator=gen)

    out = frame
    if artifacts.boiling > 0 or artifacts.jitter > 0:
        displacement = artifacts.boiling * boil + shift[None]
        out = warp(out[None], displacement.to(out.dtype))[0]
    out = out * gain * cast * field
    if artifacts.noise > 0:
        out = out + artifacts.noise * noise
    return out.clamp(0.0, 1.0)


def degrade(frames: torch.Tensor, artifacts: Artifacts, *, seed: int = 0) -> torch.Tensor:
    """Apply the artefacts to a whole clip.

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1], clean.
        artifacts: strengths.
        seed: clip seed.

    Returns:
        ``(T, 3, H, W)`` float32 in [0, 1], degraded.
    """
    return torch.stack([degrade_frame(f, artifacts, seed=seed, index=i) for i, f in enumerate(frames)])
