"""The ``Metric`` protocol, the metric registry and :func:`score`, which shares one flow computation per clip.

A metric is a function of a clip ``(T, 3, H, W)`` float32 in [0, 1], optionally a reference clip of the same
shape, and a :class:`ScoreContext` that computes, lazily and once, what several metrics need: consecutive
forward/backward flows and occlusion masks of the clip and of the reference, scene cuts and duplicated frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Literal, Protocol, runtime_checkable

import torch

from coherence.clip import parse_fps
from coherence.errors import ConfigError, InputError
from coherence.flow import FlowEstimator, flow_both_ways, get_flow
from coherence.flow.ops import flow_magnitude, occlusion_mask
from coherence.scenes import detect_cuts

log = logging.getLogger(__name__)

Direction = Literal["higher", "lower", "neutral"]

# Two consecutive frames whose 8-bit values differ by less than this on average are duplicates (a repeated frame
# re-encoded by a lossy codec differs by well under one level).
DUPLICATE_MAE = 0.5 / 255


# Flows are estimated in batches of this many pairs to bound peak memory on long clips.
FLOW_BATCH = 16


def check_clip(frames: torch.Tensor, *, what: str = "clip") -> None:
    """Raise :class:`InputError` unless ``frames`` is a ``(T, 3, H, W)`` float tensor with ``T >= 2``."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"the {what} must be a (T, 3, H, W) tensor of frames, got {shape}")
    if frames.shape[0] < 2:
        raise InputError(f"the {what} needs at least 2 frames to be scored, got {frames.shape[0]}")
    if not frames.is_floating_point():
        raise InputError(f"the {what} must hold float frames in [0, 1], got dtype {frames.dtype}")


def check_reference(frames: torch.Tensor, reference: torch.Tensor) -> None:
    """Raise :class:`InputError` unless ``reference`` has the frame count and size of ``frames``."""
    check_clip(reference, what="reference")
    if reference.shape != frames.shape:
        t, _, h, w = frames.shape
        rt, _, rh, rw = reference.shape
        raise InputError(f"the reference ({rt} frames of {rw}x{rh}) must have the frame count and size of "
                         f"the clip ({t} frames of {w}x{h})")


def consecutive_flows(
    frames: torch.Tensor, estimator: str | FlowEstimator = "dis"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward flows between consecutive frames.

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        estimator: a flow backend or its registered name.

    Returns:
        ``(forward, backward)``, each ``(T - 1, 2, H, W)`` in pixels: ``forward[t] = flow(t, t+1)``,
        ``backward[t] = flow(t+1, t)``.
    """
    est = get_flow(estimator)
    fwd, bwd = [], []
    for start in range(0, frames.shape[0] - 1, FLOW_BATCH):
        a = frames[start:start + FLOW_BATCH + 1]
        forward, backward = flow_both_ways(est, a[:-1], a[1:])
        fwd.append(forward)
        bwd.append(backward)
    return torch.cat(fwd), torch.cat(bwd)


def pair_mask(num_frames: int, cuts: Iterable[int]) -> torch.Tensor:
    """``(T - 1,)`` bool: True for pairs ``(t, t+1)`` inside one scene (``t + 1`` is not a cut)."""
    keep = torch.ones(num_frames - 1, dtype=torch.bool)
    for cut in cuts:
        if 1 <= cut < num_frames:
            keep[cut - 1] = False
    return keep


@dataclass(frozen=True)
class MetricResult:
    """A metric's value for a clip and its series over frames or frame pairs.

    ``per_frame`` is a 1-D float tensor (``nan`` where a frame or pair is excluded, e.g. across a scene cut),
    or ``None`` for metrics without a series. ``skipped`` holds the one-sentence reason when the metric could
    not run (missing optional package or weights); ``value`` is then ``nan``.
    """

    value: float
    per_frame: torch.Tensor | None = None
    skipped: str | None = None


class ScoreContext:
    """What metrics of one clip share, each computed on first use and kept.

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        reference: ``(T, 3, H, W)`` reference clip (the original, or ground truth), or ``None``.
        fps: frame rate of the clip.
        flow: flow backend (name or instance) for every flow here.
        reference_context: the context of ``reference`` scored on its own, whose flows, motion and cuts are
            then shared instead of estimated again (many outputs judged against one original).
    """

    def __init__(self, frames: torch.Tensor, reference: torch.Tensor | None = None, *,
                 fps: Fraction | float | str = 24, flow: str | FlowEstimator = "dis",
                 reference_context: ScoreContext | None = None) -> None:
        check_clip(frames)
        if reference is not None:
            check_reference(frames, reference)
        self.frames = frames
        self.reference = reference
        self.fps = parse_fps(fps)
        self.estimator = get_flow(flow)
        if reference_context is not None:
            if reference is None or reference_context.frames is not reference:
                raise ConfigError("reference_context must be the context of the same reference tensor")
            # cached_property reads the instance dict first: share what the reference's context has computed
            self.__dict__["reference_flows"] = reference_context.flows
            self.__dict__["reference_occlusion"] = reference_context.occlusion
            self.__dict__["reference_motion"] = reference_context.motion
            self.__dict__["cuts"] = reference_context.cuts

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @cached_property
    def flows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip flows ``(forward, backward)``, each ``(T - 1, 2, H, W)``: ``flow(t, t+1)`` and ``flow(t+1, t)``."""
        return consecutive_flows(self.frames, self.estimator)

    @cached_property
    def occlusion(self) -> torch.Tensor:
        """``(T - 1, 1, H, W)`` occlusion masks of the clip's forward flows (1 = occluded)."""
        return occlusion_mask(*self.flows)

    @cached_property
    def reference_flows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference flows ``(forward, backward)``, each ``(T - 1, 2, H, W)``."""
        if self.reference is None:
            raise ConfigError("this metric needs a reference clip")
        return consecutive_flows(self.reference, self.estimator)

    @cached_property
    def reference_occlusion(self) -> torch.Tensor:
        """``(T - 1, 1, H, W)`` occlusion masks of the reference's forward flows (1 = occluded)."""
        return occlusion_mask(*self.reference_flows)

    @cached_property
    def motion(self) -> torch.Tensor:
        """``(T - 1,)`` mean forward flow magnitude of the clip per pair, in pixels."""
        return flow_magnitude(self.flows[0]).flatten(1).mean(1).cpu()

    @cached_property
    def reference_motion(self) -> torch.Tensor:
        """``(T - 1,)`` mean forward flow magnitude of the reference per pair, in pixels."""
        return flow_magnitude(self.reference_flows[0]).flatten(1).mean(1).cpu()

    @cached_property
    def cuts(self) -> list[int]:
        """Frames that start a new scene; detected on the reference when there is one (a processed clip keeps
        its source's cuts, and its own artefacts must not hide them)."""
        return detect_cuts(self.reference if self.reference is not None else self.frames)

    @cached_property
    def pairs(self) -> torch.Tensor:
        """``(T - 1,)`` bool: pairs ``(t, t+1)`` within one scene."""
        return pair_mask(self.num_frames, self.cuts)

    @cached_property
    def duplicates(self) -> list[int]:
        """Frames ``t >= 1`` that repeat frame ``t - 1`` (mean absolute difference below half an 8-bit level)."""
        diff = (self.frames[1:] - self.frames[:-1]).abs().flatten(1).mean(1)
        return [t + 1 for t in torch.nonzero(diff < DUPLICATE_MAE).flatten().tolist()]


@runtime_checkable
class Metric(Protocol):
    """A coherence score: ``name``, which ``direction`` is better, whether it ``needs_reference``."""

    name: str
    direction: Direction
    needs_reference: bool

    def __call__(self, frames: torch.Tensor, reference: torch.Tensor | None = None, *,
                 context: ScoreContext) -> MetricResult: ...


MetricFn = Callable[[torch.Tensor, "torch.Tensor | None", ScoreContext], MetricResult]


@dataclass(frozen=True)
class FunctionMetric:
    """A :class:`Metric` made of a pure function ``fn(frames, reference, context) -> MetricResult``."""

    name: str
    direction: Direction
    needs_reference: bool
    fn: MetricFn
    default: bool = True

    def __call__(self, frames: torch.Tensor, reference: torch.Tensor | None = None, *,
                 context: ScoreContext) -> MetricResult:
        return self.fn(frames, reference, context)


_REGISTRY: dict[str, Metric] = {}
_DEFAULTS: set[str] = set()


def register_metric(name: str, *, direction: Direction, needs_reference: bool = False,
                    default: bool = True) -> Callable[[MetricFn], MetricFn]:
    """Decorator: register ``fn(frames, reference, context) -> MetricResult`` as metric ``name``.

    ``default`` metrics run when :func:`score` is not given a list (slow or weight-backed ones opt out).
    """

    def decorate(fn: MetricFn) -> MetricFn:
        _REGISTRY[name] = FunctionMetric(name, direction, needs_reference, fn, default)
        if default:
            _DEFAULTS.add(name)
        return fn

    return decorate


def available_metrics() -> list[str]:
    """Names of every registered metric."""
    return sorted(_REGISTRY)


def get_metric(name: str) -> Metric:
    """The registered metric ``name``.

    Raises:
        ConfigError: unknown name.
    """
    metric = _REGISTRY.get(name)
    if metric is None:
        raise ConfigError(f"unknown metric {name!r}; choose from: {', '.join(available_metrics())}")
    return metric


def nanmean(values: torch.Tensor) -> float:
    """Mean of the finite entries of a 1-D tensor; ``nan`` when there are none."""
    kept = values[torch.isfinite(values)]
    return float(kept.double().mean()) if kept.numel() else math.nan


@dataclass
class ScoreReport:
    """Scores of one clip: metric values and series, with what was excluded or skipped and why."""

    frames: int
    fps: Fraction
    metrics: dict[str, float]
    per_frame: dict[str, list[float]]
    directions: dict[str, Direction]
    skipped: dict[str, str] = field(default_factory=dict)
    cuts: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    path: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: ``{"path", "frames", "fps", "metrics", "per_frame", ...}`` (``nan`` -> ``None``)."""
        def clean(x: float) -> float | None:
            return None if not math.isfinite(x) else round(x, 6)

        return {"path": self.path, "frames": self.frames, "fps": str(self.fps),
                "metrics": {k: clean(v) for k, v in self.metrics.items()},
                "per_frame": {k: [clean(x) for x in v] for k, v in self.per_frame.items()},
                "directions": dict(self.directions), "skipped": dict(self.skipped),
                "cuts": list(self.cuts), "duplicates": list(self.duplicates)}


def default_metrics(*, with_reference: bool) -> list[str]:
    """The metrics :func:`score` runs without a list: every default one that the inputs allow."""
    return [n for n in available_metrics()
            if n in _DEFAULTS and (with_reference or not _REGISTRY[n].needs_reference)]


def score(frames: torch.Tensor, reference: torch.Tensor | None = None, *, fps: Fraction | float | str = 24,
          metrics: Sequence[str] | None = None, flow: str | FlowEstimator = "dis",
          path: str | None = None, context: ScoreContext | None = None) -> ScoreReport:
    """Score a clip with several metrics, estimating each flow field once and sharing it.

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1], ``T >= 2``.
        reference: ``(T, 3, H, W)`` original or ground truth for the guards and the reference-flow warping error.
        fps: frame rate of ``frames``.
        metrics: names to compute (see :func:`available_metrics`); default: :func:`default_metrics`.
        flow: flow backend (name or instance).
        path: label stored in the report.
        context: a prepared context (to share flows with other calls); overrides the inputs above.

    Returns:
        A :class:`ScoreReport`.

    Raises:
        InputError: malformed frames, or a reference of another frame count or size.
        ConfigError: unknown metric name, or a reference metric requested without a reference.
    """
    ctx = context or ScoreContext(frames, reference, fps=fps, flow=flow)
    names = list(metrics) if metrics is not None else default_metrics(with_reference=ctx.reference is not None)
    chosen = [get_metric(n) for n in names]
    for metric in chosen:
        if metric.needs_reference and ctx.reference is None:
            raise ConfigError(f"metric {metric.name!r} compares against a reference: pass one (--reference)")
    values: dict[str, float] = {}
    series: dict[str, list[float]] = {}
    skipped: dict[str, str] = {}
    for metric in chosen:
        result = metric(ctx.frames, ctx.reference, context=ctx)
        values[metric.name] = result.value
        if result.skipped:
            skipped[metric.name] = result.skipped
            log.info("%s skipped: %s", metric.name, result.skipped)
        if result.per_frame is not None:
            series[metric.name] = [float(x) for x in result.per_frame.flatten()]
    if ctx.duplicates:
        log.debug("%d duplicated frames: %s", len(ctx.duplicates), ctx.duplicates[:20])
    return ScoreReport(frames=ctx.num_frames, fps=ctx.fps, metrics=values, per_frame=series,
                       directions={m.name: m.direction for m in chosen}, skipped=skipped, cuts=list(ctx.cuts),
                       duplicates=list(ctx.duplicates), path=path)
