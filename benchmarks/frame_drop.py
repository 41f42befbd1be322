"""Frame-drop interpolation: drop every odd frame of a clean clip, restore it, compare with the dropped frames.

Methods: our interpolator (``coherence.interpolate``, when that module is present), ffmpeg's ``minterpolate``
(motion-compensated) and ``framerate`` (blending), and two baselines: repeating the previous frame and blending
the two neighbours. Scores on the restored frames
only: PSNR and SSIM against the dropped ground truth; and VBench's temporal flickering of the restored clip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from fractions import Fraction

import kornia
import torch

from benchmarks.ffmpeg_filters import apply_ffmpeg_filter
from coherence.metrics.base import nanmean
from coherence.metrics.vbench import flickering_per_pair

log = logging.getLogger(__name__)

Restorer = Callable[[torch.Tensor, Fraction], torch.Tensor]


def _repeat(kept: torch.Tensor, fps: Fraction) -> torch.Tensor:
    return kept[:-1]


def _blend(kept: torch.Tensor, fps: Fraction) -> torch.Tensor:
    return 0.5 * (kept[:-1] + kept[1:])


def _ffmpeg(vf: Callable[[Fraction], str]) -> Restorer:
    def run(kept: torch.Tensor, fps: Fraction) -> torch.Tensor:
        out, _ = apply_ffmpeg_filter(kept, fps, vf(fps))
        return out[1::2][: kept.shape[0] - 1]

    return run


def _ours() -> Restorer | None:
    try:
        from coherence.interpolate import interpolate
    except ImportError:
        log.warning("coherence.interpolate is unavailable; our interpolator is left out of the frame-drop case")
        return None

    def run(kept: torch.Tensor, fps: Fraction) -> torch.Tensor:
        frames, _ = interpolate(kept, fps, factor=2)
        return frames[1::2][: kept.shape[0] - 1]

    return run


def restorers() -> dict[str, tuple[str, Restorer]]:
    """Name -> (kind, restore(kept (N, 3, H, W), kept_fps) -> the N - 1 in-between frames)."""
    found: dict[str, tuple[str, Restorer]] = {}
    ours = _ours()
    if ours is not None:
        found["ours_interpolate"] = ("ours", ours)
    found.update({
        "ffmpeg_minterpolate": ("competitor", _ffmpeg(lambda fps: f"minterpolate=fps={fps * 2}:mi_mode=mci")),
        "ffmpeg_framerate": ("competitor", _ffmpeg(lambda fps: f"framerate=fps={fps * 2}")),
        "repeat": ("baseline", _repeat),
        "blend": ("baseline", _blend),
    })
    return found


def frame_drop_rows(name: str, frames: torch.Tensor, fps: Fraction) -> list[dict[str, object]]:
    """Score every restorer on one clean clip ``(T, 3, H, W)`` float32 in [0, 1] (``T >= 3``)."""
    length = frames.shape[0] - (1 - frames.shape[0] % 2)  # odd length: every dropped frame has two neighbours
    clip = frames[:length]
    kept, truth = clip[0::2], clip[1::2]
    rows = []
    for method, (kind, restore) in restorers().items():
        start = time.perf_counter()
        try:
            middle = restore(kept, fps / 2).float().clamp(0, 1)
        except Exception as exc:  # noqa: BLE001 - a failing competitor is reported, not fatal to the suite
            log.warning("%s failed on %s: %s", method, name, exc)
            continue
        seconds = time.perf_counter() - start
        # ffmpeg's rate filters may stop one in-between frame early: compare the frames both have
        count = min(middle.shape[0], truth.shape[0])
        if middle.shape[1:] != truth.shape[1:] or count < truth.shape[0] - 1:
            log.warning("%s returned %s on %s, expected %s", method, tuple(middle.shape), name, tuple(truth.shape))
            continue
        middle, target = middle[:count], truth[:count]
        restored = clip[: 2 * count + 1].clone()
        restored[1::2] = middle
        psnr = torch.tensor([float(kornia.metrics.psnr(m[None], t[None], 1.0))
                             for m, t in zip(middle, target, strict=True)])
        ssim = kornia.metrics.ssim(middle, target, 11).flatten(1).mean(1)
        flicker = (255.0 - nanmean(flickering_per_pair(restored))) / 255.0
        rows.append({"case": name, "method": method, "kind": kind, "frames": count,
                     "psnr": nanmean(psnr.clamp(max=100.0)), "ssim": nanmean(ssim),
                     "temporal_flickering": flicker, "seconds": seconds,
                     "fps": count / seconds if seconds > 0 else float("nan")})
    return rows
