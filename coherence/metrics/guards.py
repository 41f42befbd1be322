"""Fidelity guards: scores against a reference clip that a frozen, lagging or blurred output cannot game.

Stability scores alone (warping error, VBench's temporal flickering) reward a clip that stops moving. Each guard
below compares the clip with its reference (the original of a processed clip, or the ground truth):

- ``psnr``, ``ssim``: per-frame fidelity (``kornia.metrics``).
- ``alignment``: share of frames ``t``, among those where the reference moves, whose frame is nearer reference
  frame ``t`` than reference frames ``t ± 1``. Distances are taken between per-channel standardised frames, so
  that a corrected exposure or colour cast does not count as misalignment. Lag, freezing and causal temporal
  averaging lower it.
- ``motion_kept``: the clip's mean flow magnitude over the reference's. Flicker and noise read as apparent
  motion, so a good smoother of a noisy or flickering reference lowers it somewhat; a frozen clip drives it to 0.
- ``freeze_rate``: share of pairs, among those where the reference moves, whose output barely moves (a repeated
  frame, or less than a fifth of the reference's motion).
- ``sharpness_kept``: variance of the Laplacian of the luma (a standard focus measure, Pech-Pacheco et al. 2000),
  clip over reference. Noise raises it, so denoising a noisy reference lowers it too.
"""

from __future__ import annotations

import math

import torch

from coherence.errors import ConfigError
from coherence.metrics.base import FLOW_BATCH, MetricResult, ScoreContext, nanmean, register_metric

# A reference pair "moves" when its mean flow magnitude reaches this many pixels: below it the three candidate
# frames of ``alignment`` differ too little to be told apart through noise.
MOVING_PX = 0.5
# A pair of output frames is frozen when it moves less than this fraction of its reference pair.
FREEZE_RATIO = 0.2
# SSIM window, as in Wang et al. 2004.
SSIM_WINDOW = 11


def _reference(reference: torch.Tensor | None) -> torch.Tensor:
    if reference is None:  # score() refuses reference metrics without one; this guards direct calls
        raise ConfigError("this metric compares against a reference clip: pass one")
    return reference


@register_metric("psnr", direction="higher", needs_reference=True)
def psnr(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """Per-frame PSNR in dB against the reference (peak 1.0); value: the mean over frames."""
    import kornia  # here, not at import: it adds about 0.15 s to every command's start

    ref = _reference(reference)
    per = torch.tensor([float(kornia.metrics.psnr(frames[t:t + 1].float().clamp(0, 1), ref[t:t + 1].float(), 1.0))
                        for t in range(frames.shape[0])])
    per = per.clamp(max=100.0)  # identical frames give inf; 100 dB stands for "exact"
    return MetricResult(nanmean(per), per)


@register_metric("ssim", direction="higher", needs_reference=True)
def ssim(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """Per-frame mean SSIM (11x11 Gaussian window) against the reference; value: the mean over frames."""
    import kornia  # here, not at import: it adds about 0.15 s to every command's start

    ref = _reference(reference)
    per = torch.empty(frames.shape[0])
    for start in range(0, frames.shape[0], FLOW_BATCH):
        a = frames[start:start + FLOW_BATCH].float().clamp(0, 1)
        b = ref[start:start + FLOW_BATCH].float()
        per[start:start + a.shape[0]] = kornia.metrics.ssim(a, b, SSIM_WINDOW).flatten(1).mean(1)
    return MetricResult(nanmean(per), per)


def _standardised(frames: torch.Tensor) -> torch.Tensor:
    """Per-frame, per-channel zero-mean unit-variance ``(N, 3, H, W)`` (removes global gain and colour cast)."""
    flat = frames.float().flatten(2)
    mean = flat.mean(2, keepdim=True)
    std = flat.std(2, keepdim=True).clamp_min(1e-3)
    return ((flat - mean) / std).view_as(frames)


def reference_moving(context: ScoreContext) -> torch.Tensor:
    """``(T - 1,)`` bool: reference pairs inside one scene that move at least :data:`MOVING_PX` on average."""
    return context.pairs & (context.reference_motion >= MOVING_PX)


@register_metric("alignment", direction="higher", needs_reference=True)
def alignment(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """Share of moving frames nearer their own reference frame than its neighbours; series 1/0 (``nan``: static)."""
    ref = _reference(reference)
    t_count = frames.shape[0]
    moving = reference_moving(context)
    own = torch.empty(t_count)
    before = torch.full((t_count,), math.inf)  # distance of frame t to reference frame t - 1 (inf: not a candidate)
    after = torch.full((t_count,), math.inf)  # ... and to reference frame t + 1
    for start in range(0, t_count, FLOW_BATCH):
        stop = min(start + FLOW_BATCH, t_count)
        lo, hi = max(start - 1, 0), min(stop + 1, t_count)
        clip_std, ref_std = _standardised(frames[start:stop]), _standardised(ref[lo:hi])
        for t in range(start, stop):
            own[t] = (clip_std[t - start] - ref_std[t - lo]).abs().mean()
            if t >= 1 and moving[t - 1]:
                before[t] = (clip_std[t - start] - ref_std[t - 1 - lo]).abs().mean()
            if t + 1 < t_count and moving[t]:
                after[t] = (clip_std[t - start] - ref_std[t + 1 - lo]).abs().mean()
    nearest_other = torch.minimum(before, after)
    per = (own < nearest_other).float()
    per[torch.isinf(nearest_other)] = math.nan  # the reference does not move around frame t
    return MetricResult(nanmean(per), per)


@register_metric("motion_kept", direction="higher", needs_reference=True)
def motion_kept(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """Total flow magnitude of the clip over the reference's, on pairs within a scene; series: ratio per pair."""
    keep = context.pairs
    clip_motion, ref_motion = context.motion, context.reference_motion
    total_ref = float(ref_motion[keep].sum())
    value = float(clip_motion[keep].sum()) / total_ref if total_ref > 0 else math.nan
    per = clip_motion / ref_motion.clamp_min(1e-6)
    per[~keep] = math.nan
    return MetricResult(value, per)


@register_metric("freeze_rate", direction="lower", needs_reference=True)
def freeze_rate(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """Share of moving reference pairs whose output pair is a repeat or moves < :data:`FREEZE_RATIO` as much."""
    moving = reference_moving(context)
    frozen = context.motion < FREEZE_RATIO * context.reference_motion
    for t in context.duplicates:
        frozen[t - 1] = True
    per = frozen.float()
    per[~moving] = math.nan
    return MetricResult(nanmean(per) if moving.any() else math.nan, per)


def laplacian_variance(frames: torch.Tensor) -> torch.Tensor:
    """``(N,)`` variance of the 3x3 Laplacian of the luma of ``(N, 3, H, W)`` frames in [0, 1]."""
    import kornia  # here, not at import: it adds about 0.15 s to every command's start

    out = torch.empty(frames.shape[0])
    for start in range(0, frames.shape[0], FLOW_BATCH):
        luma = kornia.color.rgb_to_grayscale(frames[start:start + FLOW_BATCH].float())
        out[start:start + luma.shape[0]] = kornia.filters.laplacian(luma, 3).flatten(1).var(1)
    return out


@register_metric("sharpness_kept", direction="higher", needs_reference=True)
def sharpness_kept(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """Mean Laplacian variance of the clip over the reference's; series: the ratio per frame."""
    ref = _reference(reference)
    clip_var, ref_var = laplacian_variance(frames), laplacian_variance(ref)
    value = float(clip_var.mean() / ref_var.mean()) if float(ref_var.mean()) > 0 else math.nan
    return MetricResult(value, clip_var / ref_var.clamp_min(1e-12))
