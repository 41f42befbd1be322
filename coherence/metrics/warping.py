"""Flow warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency", ECCV, Sec. 5.1).

For each pair of consecutive frames ``(t, t+1)``, frame ``t+1`` is warped onto frame ``t`` with the flow
``flow(t, t+1)``; the error of the pair is the squared difference ``(I_t - warp(I_{t+1}))²`` averaged over the
unoccluded pixels (forward-backward and motion-boundary tests, :func:`coherence.flow.ops.occlusion_mask`) and
over the three channels, with frames in [0, 1]. The clip's value is the mean over its pairs (reference code:
``evaluate_WarpError.py`` of the authors' repository, phoenix104104/fast_blind_video_consistency).

Following the Lai protocol for judging a processed clip, the flow (and its occlusion mask) may come from a
``reference`` clip (the original) instead of the clip itself, so that the processing cannot make its own
flow easier to follow. Pairs across a scene cut carry no meaning and are excluded (``nan`` in ``per_pair``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from coherence.errors import InputError
from coherence.flow import FlowEstimator
from coherence.flow.ops import occlusion_mask, warp
from coherence.metrics.base import (
    FLOW_BATCH,
    MetricResult,
    ScoreContext,
    check_clip,
    check_reference,
    consecutive_flows,
    nanmean,
    pair_mask,
    register_metric,
)


def warping_errors(frames: torch.Tensor, forward: torch.Tensor, occluded: torch.Tensor) -> torch.Tensor:
    """Per-pair warping error from given flows and occlusion masks (the functional core).

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        forward: ``(T - 1, 2, H, W)``, ``forward[t] = flow(t, t+1)``.
        occluded: ``(T - 1, 1, H, W)`` mask, 1 where pixel ``p`` of frame ``t`` is occluded.

    Returns:
        ``(T - 1,)`` float32: mean over unoccluded pixels and channels of ``(I_t - warp(I_{t+1}))²``. A pair
        with every pixel occluded is scored over all pixels (Lai's code would count it as 0, so that an
        unusable flow would hide any error).
    """
    errors = torch.empty(frames.shape[0] - 1, dtype=torch.float32)
    for start in range(0, frames.shape[0] - 1, FLOW_BATCH):
        stop = min(start + FLOW_BATCH, frames.shape[0] - 1)
        warped = warp(frames[start + 1:stop + 1].float(), forward[start:stop].float())
        sq = (frames[start:stop].float() - warped).square().mean(1, keepdim=True)
        valid = 1.0 - occluded[start:stop].float()
        count = valid.flatten(1).sum(1)
        masked = (sq * valid).flatten(1).sum(1) / count.clamp_min(1.0)
        errors[start:stop] = torch.where(count > 0, masked, sq.flatten(1).mean(1)).cpu()
    return errors


def warping_error(
    frames: torch.Tensor,
    *,
    flows: tuple[torch.Tensor, torch.Tensor] | None = None,
    reference: torch.Tensor | None = None,
    flow: str | FlowEstimator = "dis",
    cuts: Iterable[int] = (),
) -> tuple[float, torch.Tensor]:
    """Lai et al. 2018 warping error of a clip (lower is more temporally consistent).

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1], ``T >= 2``.
        flows: precomputed ``(forward, backward)`` consecutive flows, each ``(T - 1, 2, H, W)`` (see
            :func:`consecutive_flows`); when given, neither ``reference`` nor ``flow`` is used to estimate.
        reference: ``(T, 3, H, W)`` clip whose flow is used (the original of a processed clip).
        flow: flow backend (name or instance) when flows are estimated here.
        cuts: frame indices that start a new scene; the pairs across them are excluded.

    Returns:
        ``(value, per_pair)``: the mean error over the included pairs (``nan`` if none) and the ``(T - 1,)``
        float32 per-pair errors, ``nan`` for excluded pairs.

    Raises:
        InputError: malformed frames, or a reference of another shape.
    """
    check_clip(frames)
    if flows is None:
        source = frames
        if reference is not None:
            check_reference(frames, reference)
            source = reference
        flows = consecutive_flows(source, flow)
    forward, backward = flows
    if forward.shape[0] != frames.shape[0] - 1 or forward.shape[-2:] != frames.shape[-2:]:
        raise InputError(f"flows {tuple(forward.shape)} do not match a clip of shape {tuple(frames.shape)}")
    per_pair = warping_errors(frames, forward, occlusion_mask(forward, backward))
    per_pair[~pair_mask(frames.shape[0], cuts)] = float("nan")
    kept = per_pair[~per_pair.isnan()]
    value = float(kept.mean()) if kept.numel() else float("nan")
    return value, per_pair


@register_metric("warping_error", direction="lower")
def _warping_error_metric(frames: torch.Tensor, reference: torch.Tensor | None,
                          context: ScoreContext) -> MetricResult:
    """Warping error with the clip's own flow."""
    per_pair = warping_errors(frames, context.flows[0], context.occlusion)
    per_pair[~context.pairs] = float("nan")
    return MetricResult(nanmean(per_pair), per_pair)


@register_metric("warping_error_ref", direction="lower", needs_reference=True)
def _warping_error_ref_metric(frames: torch.Tensor, reference: torch.Tensor | None,
                              context: ScoreContext) -> MetricResult:
    """Warping error with the reference's flow and occlusion (Lai et al. 2018's protocol for processed clips)."""
    per_pair = warping_errors(frames, context.reference_flows[0], context.reference_occlusion)
    per_pair[~context.pairs] = float("nan")
    return MetricResult(nanmean(per_pair), per_pair)
