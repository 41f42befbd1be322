"""VBench's frame-coherence scores, computed on the CPU without downloaded weights.

Definitions follow the VBench reference implementation (Huang et al. 2024, "VBench: Comprehensive Benchmark
Suite for Video Generative Models"; repository Vchitect/VBench):

- ``temporal_flickering`` (``vbench/temporal_flickering.py``): ``(255 - mean MAE) / 255`` where MAE is the mean
  absolute difference of consecutive uint8 frames over all pixels and channels.
- ``motion_smoothness`` (``vbench/motion_smoothness.py``): keep the even frames, re-interpolate the odd ones from
  their neighbours, ``(255 - mean MAE(original odd, interpolated)) / 255``. VBench interpolates with AMT-S
  weights; we use our own flow-based interpolator (:func:`coherence.synthesis.interpolate_pair` at
  ``t = 1/2`` with the scorer's flow backend), so absolute values are not comparable with published VBench
  numbers, only their ordering.
- ``dynamic_degree`` (``vbench/dynamic_degree.py``): sample the clip at about 8 fps, take per pair the mean of
  the top 5% flow magnitudes; the clip is dynamic (1) when at least ``round(4 * n / 16)`` of its ``n`` sampled
  frames' pairs exceed ``max(1, 8 / fps) * 6 * min(H, W) / 256`` pixels. VBench uses RAFT; we use the scorer's
  flow backend (DIS by default).
- ``mean_flow``: the mean flow magnitude per consecutive pair, in pixels (not in VBench; the raw quantity).

Unlike VBench, pairs across a detected scene cut are left out (a cut is not flicker).
"""

from __future__ import annotations

import torch

from coherence.flow.ops import flow_magnitude
from coherence.metrics.base import FLOW_BATCH, MetricResult, ScoreContext, nanmean, register_metric


def to_uint8_levels(frames: torch.Tensor) -> torch.Tensor:
    """``(T, 3, H, W)`` float in [0, 1] -> float32 tensor of the rounded 8-bit levels 0..255 (as decoded)."""
    return frames.float().mul(255.0).round_().clamp_(0, 255)


def flickering_per_pair(frames: torch.Tensor) -> torch.Tensor:
    """``(T - 1,)`` mean absolute difference of consecutive frames in 8-bit levels (0..255)."""
    out = torch.empty(frames.shape[0] - 1)
    for start in range(0, frames.shape[0] - 1, FLOW_BATCH):
        chunk = to_uint8_levels(frames[start:start + FLOW_BATCH + 1])
        out[start:start + chunk.shape[0] - 1] = (chunk[1:] - chunk[:-1]).abs().flatten(1).mean(1)
    return out


@register_metric("temporal_flickering", direction="higher")
def temporal_flickering(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """VBench temporal flickering; per pair ``(255 - MAE) / 255``, value from the mean MAE over kept pairs."""
    mae = flickering_per_pair(frames)
    mae[~context.pairs] = float("nan")
    return MetricResult((255.0 - nanmean(mae)) / 255.0, (255.0 - mae) / 255.0)


@register_metric("motion_smoothness", direction="higher")
def motion_smoothness(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """VBench motion smoothness with our interpolator; per odd frame ``(255 - MAE) / 255``."""
    try:
        from coherence.synthesis import interpolate_pair  # the one stage a metric uses (ARCHITECTURE.md)
    except ImportError as exc:
        return MetricResult(float("nan"), None, skipped=f"the interpolator is unavailable ({exc})")
    t = frames.shape[0]
    per_frame = torch.full((t,), float("nan"))
    odd = list(range(1, t - 1, 2))  # VBench compares only odd frames that have an even frame on both sides
    for start in range(0, len(odd), FLOW_BATCH):
        idx = torch.tensor(odd[start:start + FLOW_BATCH])
        first, last = frames[idx - 1].float(), frames[idx + 1].float()
        fwd, bwd = context.estimator(first, last), context.estimator(last, first)
        mids = to_uint8_levels(interpolate_pair(first, last, 0.5, flow_ab=fwd, flow_ba=bwd))
        # index_put_ wants the values on the series' device (the CPU)
        per_frame[idx] = ((255.0 - (mids - to_uint8_levels(frames[idx])).abs().flatten(1).mean(1)) / 255.0).cpu()
    for cut in context.cuts:  # a triple (t-1, t, t+1) spanning a cut cannot be interpolated
        for frame in (cut, cut - 1):
            if 0 <= frame < t:
                per_frame[frame] = float("nan")
    return MetricResult(nanmean(per_frame), per_frame)


def _top5_magnitude(flow: torch.Tensor) -> torch.Tensor:
    """``(N,)`` mean of the largest 5% of flow magnitudes per field (``vbench/dynamic_degree.py: get_score``)."""
    mag = flow_magnitude(flow).flatten(1)
    k = max(1, int(mag.shape[1] * 0.05))
    return mag.topk(k, dim=1).values.mean(1)


@register_metric("dynamic_degree", direction="higher")
def dynamic_degree(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """VBench dynamic degree: 1.0 when the clip moves enough, else 0.0; series: top-5% magnitude per pair."""
    fps = float(context.fps)
    interval = max(1, round(fps / 8))  # VBench samples at about 8 fps
    sampled = list(range(0, frames.shape[0], interval))
    if interval == 1:
        scores = _top5_magnitude(context.flows[0])
    else:
        chunks = []
        for start in range(0, len(sampled) - 1, FLOW_BATCH):
            idx = torch.tensor(sampled[start:start + FLOW_BATCH + 1])
            chunks.append(_top5_magnitude(context.estimator(frames[idx[:-1]].float(), frames[idx[1:]].float())))
        scores = torch.cat(chunks) if chunks else torch.empty(0)
    # a sampled pair (s_i, s_i+1) spanning a cut is left out
    pairs = zip(sampled[:-1], sampled[1:], strict=True)
    keep = torch.tensor([not any(a < c <= b for c in context.cuts) for a, b in pairs], dtype=torch.bool)
    scores = scores.cpu().float()
    scores[~keep] = float("nan")
    h, w = frames.shape[-2:]
    threshold = max(1.0, 8.0 / fps) * 6.0 * min(h, w) / 256.0
    needed = round(4 * (len(sampled) / 16.0))  # VBench's count rule, Python's rounding included
    moving = int((scores > threshold).sum())
    dynamic = bool(keep.any()) and moving >= needed
    return MetricResult(1.0 if dynamic else 0.0, scores)


@register_metric("mean_flow", direction="neutral")
def mean_flow(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """Mean flow magnitude per consecutive pair, in pixels (flicker and noise read as some apparent motion)."""
    per_pair = context.motion.clone()
    per_pair[~context.pairs] = float("nan")
    return MetricResult(nanmean(per_pair), per_pair)


__all__ = ["dynamic_degree", "flickering_per_pair", "mean_flow", "motion_smoothness",
           "temporal_flickering", "to_uint8_levels"]
