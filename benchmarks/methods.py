"""The methods the suite compares: our smoothing presets, ffmpeg competitors, and adversarial baselines.

Every method maps ``(T, 3, H, W)`` float32 frames in [0, 1] at a frame rate to frames of the same shape. The
adversarial baselines exist to be beaten: each games one stability score (warping error, VBench flickering)
by giving up something the fidelity guards measure.

- ``temporal_average``: causal exponential average (weight 0.3 on the new frame): stable, but lags and blurs
  motion (loses alignment and sharpness).
- ``frame_hold``: each frame repeated for 3 frames: perfectly stable within a hold, but frozen.
- ``spatial_blur``: Gaussian blur (sigma 2 px): hides flicker detail and noise, loses sharpness.
- ``brightness_norm``: every frame's per-channel mean set to the clip's: fixes global flicker only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import kornia
import torch

from benchmarks.ffmpeg_filters import apply_ffmpeg_filter

log = logging.getLogger(__name__)

Kind = Literal["ours", "competitor", "baseline", "none"]
Runner = Callable[[torch.Tensor, Fraction], tuple[torch.Tensor, float]]


@dataclass(frozen=True)
class Method:
    """A named way to process a clip; ``run(frames, fps) -> (frames, seconds)``."""

    name: str
    kind: Kind
    run: Runner
    description: str


def _timed(fn: Callable[[torch.Tensor, Fraction], torch.Tensor]) -> Runner:
    def run(frames: torch.Tensor, fps: Fraction) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        out = fn(frames, fps)
        return out.float().clamp(0, 1), time.perf_counter() - start

    return run


def identity(frames: torch.Tensor, fps: Fraction) -> torch.Tensor:
    """The input unchanged (the row every method is compared with)."""
    return frames


def temporal_average(frames: torch.Tensor, fps: Fraction, *, weight: float = 0.3) -> torch.Tensor:
    """Causal exponential moving average ``y_t = weight * x_t + (1 - weight) * y_{t-1}``."""
    out = frames.clone()
    for t in range(1, frames.shape[0]):
        out[t] = weight * frames[t] + (1 - weight) * out[t - 1]
    return out


def frame_hold(frames: torch.Tensor, fps: Fraction, *, hold: int = 3) -> torch.Tensor:
    """Frame ``t`` replaced by frame ``hold * (t // hold)``."""
    index = (torch.arange(frames.shape[0]) // hold) * hold
    return frames[index].clone()


def spatial_blur(frames: torch.Tensor, fps: Fraction, *, sigma: float = 2.0) -> torch.Tensor:
    """Per-frame Gaussian blur (``kornia.filters.gaussian_blur2d``)."""
    size = 2 * round(3 * sigma) + 1
    return torch.cat([kornia.filters.gaussian_blur2d(chunk, (size, size), (sigma, sigma))
                      for chunk in frames.split(16)])


def brightness_norm(frames: torch.Tensor, fps: Fraction) -> torch.Tensor:
    """Scale each frame's channels so that their means equal the clip's per-channel means."""
    means = frames.mean((2, 3), keepdim=True)
    target = means.mean(0, keepdim=True)
    return frames * (target / means.clamp_min(1e-3))


def _ffmpeg(vf: str) -> Runner:
    def run(frames: torch.Tensor, fps: Fraction) -> tuple[torch.Tensor, float]:
        return apply_ffmpeg_filter(frames, fps, vf)

    return run


FFMPEG_FILTERS = {
    # deflicker: moving average of frame luminance over 5 frames (ffmpeg's `deflicker`, power mean)
    "ffmpeg_deflicker": "deflicker=size=5:mode=pm",
    # tmix: plain average of 3 consecutive frames
    "ffmpeg_tmix": "tmix=frames=3",
    # hqdn3d: spatio-temporal denoiser, temporal strength raised (luma/chroma spatial 2, temporal 8)
    "ffmpeg_hqdn3d": "hqdn3d=2:2:8:8",
    # the two together: the usual recipe for flickering footage
    "ffmpeg_deflicker_hqdn3d": "deflicker=size=5:mode=pm,hqdn3d=2:2:8:8",
}


def _ours() -> list[Method]:
    """Our smoothing presets (``coherence.smooth``); none, with a warning, where that module is missing."""
    try:
        from coherence.smooth import smooth
        from coherence.smooth_presets import SMOOTH_PRESETS
    except ImportError as exc:
        log.warning("coherence.smooth is unavailable (%s); our methods are left out", exc)
        return []

    def preset_runner(preset: str) -> Runner:
        return _timed(lambda frames, fps: smooth(frames, fps=fps, preset=preset))

    return [Method(f"ours_{p}", "ours", preset_runner(p), f"coherence smooth --preset {p}") for p in SMOOTH_PRESETS]


def all_methods(*, quick: bool = False) -> list[Method]:
    """Every method of the suite, the input first; ``quick`` keeps the default preset of ours only."""
    ours = _ours()
    if quick:
        ours = [m for m in ours if m.name == "ours_default"] or ours[:1]
    return [
        Method("input", "none", _timed(identity), "the input, unprocessed"),
        *ours,
        *(Method(name, "competitor", _ffmpeg(vf), f"ffmpeg -vf {vf}") for name, vf in FFMPEG_FILTERS.items()),
        Method("temporal_average", "baseline", _timed(temporal_average), "causal exponential average, weight 0.3"),
        Method("frame_hold", "baseline", _timed(frame_hold), "each frame held for 3 frames"),
        Method("spatial_blur", "baseline", _timed(spatial_blur), "Gaussian blur, sigma 2 px"),
        Method("brightness_norm", "baseline", _timed(brightness_norm), "per-frame channel means set to the clip's"),
    ]
