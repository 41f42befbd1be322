"""Flow-based frame interpolation to any integer factor or target frame rate, scene-cut and duplicate aware.

Synthesis (:func:`interpolate_pair`): bidirectional flow ``F_01 = flow(a, b)``, ``F_10 = flow(b, a)`` (DIS by
default) is splatted forward to time ``t`` with softmax weights from brightness constancy (:func:`motion_at`:
Baker et al. 2011's flow forward warping with Niklaus & Liu 2020's softmax splatting), so that where surfaces
overlap the visible one moves the pixel and revealed areas follow the frame that sees them; pixels nothing
reaches fall back to Super SloMo's linear approximation (Jiang et al. 2018, eq. 4)
``F_t0 ≈ -(1 - t) t F_01 + t² F_10``, ``F_t1 ≈ (1 - t)² F_01 - t (1 - t) F_10``. Both frames are then warped to
``t`` with bicubic sampling and blended with weights ``1 - t`` and ``t``. (Weighting the blend by the
frames' forward-backward consistency lost 0.1-0.2 dB on the real benchmark clips, so the blend is not.)

Timing (:func:`source_position`): output frame ``k`` is at time ``k / out_fps``, i.e. at source position
``k * in_fps / out_fps`` (exact ``Fraction``); the output ends at the last input frame, so a factor ``N`` on
``T`` frames gives ``N (T - 1) + 1`` frames and frame ``N k`` is input frame ``k`` (the last frame is not held).

Scene cuts (:class:`~coherence.scenes.SceneCutDetector`): positions between the last frame of a scene and the
first of the next show the earlier frame (it stays on screen until the cut, as at the input rate); nothing is
morphed across a cut.

Duplicates: a run of up to ``max_duplicate_run`` identical (or nearly identical) input frames, as GIF exports
and some generators emit, is one image sampled once: it is placed at the centre of its run and motion is
interpolated across the real change, so a 3×-repeated 8 fps clip comes out as smooth motion instead of three
holds and a jump, and no flow is computed between identical frames. Frame ``N k`` then differs from input
``k`` inside such runs. Longer runs are genuine stills: held, with motion interpolated only at their ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from coherence.clip import parse_fps
from coherence.errors import ConfigError, InputError
from coherence.flow import FlowEstimator, get_flow, resize_flow, warp
from coherence.scenes import SceneCutDetector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InterpolationPreset:
    """What one generator emits and what to turn it into.

    Attributes:
        source_fps: the generator's native rate.
        target_fps: the output rate.
        smoothing: strength for :class:`coherence.smooth.Smoother` before interpolation (0 = none).
    """

    source_fps: Fraction
    target_fps: Fraction
    smoothing: float


# Target rates: 24 fps keeps a cinema cadence (8 fps x3 exactly; Wan's 16 fps x1.5). Smoothing strength: the
# strongest of 0, 0.3, 0.6, 1 that keeps every smoothed frame of the family's clips within 38 dB PSNR of its
# input (``python -m benchmarks.interpolation --presets``: frame differences and warping error of the 24 fps
# output fall with strength, by about 80 % of the full-strength gain at 0.6, while fidelity falls 4-6 dB from
# 0.6 to 1). LaVie clips stand in for ModelScope/Zeroscope; no Wan clip was at hand, so Wan's 0.6 is
# provisional.
INTERPOLATION_PRESETS: dict[str, InterpolationPreset] = {
    "modelscope": InterpolationPreset(Fraction(8), Fraction(24), 0.3),
    "zeroscope": InterpolationPreset(Fraction(8), Fraction(24), 0.3),
    "animatediff": InterpolationPreset(Fraction(8), Fraction(24), 0.6),
    "cogvideox": InterpolationPreset(Fraction(8), Fraction(24), 1.0),
    "wan": InterpolationPreset(Fraction(16), Fraction(24), 0.6),
}


def get_preset(name: str) -> InterpolationPreset:
    """Look up :data:`INTERPOLATION_PRESETS`; unknown names raise :class:`ConfigError`."""
    try:
        return INTERPOLATION_PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown interpolation preset {name!r}; choose one of: "
                          f"{', '.join(INTERPOLATION_PRESETS)}") from None


def intermediate_flows(flow_ab: torch.Tensor, flow_ba: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows ``(F_t0, F_t1)`` from time ``t`` in [0, 1] back to ``a`` and on to ``b`` (Super SloMo eq. 4), from
    ``flow(a, b)`` and ``flow(b, a)``; all ``(N, 2, H, W)`` pixels. ``warp(a, F_t0)``, ``warp(b, F_t1)`` sit at ``t``.
    """
    flow_t0 = -(1 - t) * t * flow_ab + t * t * flow_ba
    flow_t1 = (1 - t) * (1 - t) * flow_ab - t * (1 - t) * flow_ba
    return flow_t0, flow_t1


def splat(values: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Forward (summation) splatting: add each pixel's ``values`` ``(N, C, H, W)`` bilinearly at ``p + flow(p)``
    (``flow`` ``(N, 2, H, W)`` pixels); returns the ``(N, C, H, W)`` sums, targets outside the frame dropped."""
    n, c, h, w = values.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    x, y = xs + flow[:, 0], ys + flow[:, 1]
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    offset = (torch.arange(n, device=flow.device) * (h * w)).view(n, 1, 1)
    rows = values.permute(0, 2, 3, 1).reshape(-1, c)
    out = values.new_zeros(n * h * w, c)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1) + offset).reshape(-1)
        out.index_add_(0, index, rows * (weight * inside).reshape(-1, 1))
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def motion_at(a: torch.Tensor, b: torch.Tensor, t: float, *, flow_ab: torch.Tensor, flow_ba: torch.Tensor,
              alpha: float = 20.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows ``(F_t0, F_t1)`` from time ``t`` to ``a`` and to ``b``, occlusion-aware.

    Both flows are splatted forward to time ``t`` (``a``'s pixels by ``t F_ab`` carrying ``F_ab``, ``b``'s by
    ``(1 - t) F_ba`` carrying ``-F_ba``), as in Baker et al. 2011 (Middlebury interpolation, flow forward
    warping), merged with softmax splatting weights ``exp(-alpha |a - warp(b, F_ab)|)`` (Niklaus & Liu 2020,
    eq. 5-6 with the brightness-constancy metric): where two surfaces land on one pixel, the one whose motion
    is photo-consistent, i.e. visible in both frames, wins, so occluded and revealed areas take the motion of
    the surface that sees them. Pixels that nothing reaches take the Super SloMo approximation.

    Args:
        a, b: ``(N, 3, H, W)`` float32 in [0, 1].
        t: time in (0, 1).
        flow_ab, flow_ba: ``(N, 2, H, W)`` pixels.
        alpha: sharpness of the softmax weight (per unit of mean absolute colour error).

    Returns:
        ``(F_t0, F_t1)``, each ``(N, 2, H, W)``.
    """
    n = a.shape[0]
    aligned = warp(torch.cat((b, a)), torch.cat((flow_ab, flow_ba)))
    scores = torch.exp(-alpha * (torch.cat((a, b)) - aligned).abs().mean(1, keepdim=True))
    score_a, score_b = scores[:n], scores[n:]
    ones = torch.ones_like(score_a)
    # one splat for both frames: stack them along the batch, then add the two halves
    values = torch.cat((torch.cat((flow_ab * score_a, score_a, ones), 1),
                        torch.cat((-flow_ba * score_b, score_b, ones), 1)))
    splatted = splat(values, torch.cat((t * flow_ab, (1 - t) * flow_ba)))
    total = splatted[:n] + splatted[n:]
    motion = total[:, :2] / total[:, 2:3].clamp_min(1e-12)
    # coverage below 1/2 (holes, frame borders) fades to the linear approximation
    reached = (total[:, 3:4] * 2).clamp(0, 1) * (total[:, 2:3] > 1e-8)
    approx_t0, approx_t1 = intermediate_flows(flow_ab, flow_ba, t)
    flow_t0 = reached * (-t * motion) + (1 - reached) * approx_t0
    flow_t1 = reached * ((1 - t) * motion) + (1 - reached) * approx_t1
    return flow_t0, flow_t1


def interpolate_pair(a: torch.Tensor, b: torch.Tensor, t: float, *, flow_ab: torch.Tensor, flow_ba: torch.Tensor,
                     alpha: float = 20.0, motion_scale: float = 0.25, mode: str = "bicubic") -> torch.Tensor:
    """Synthesise the frame at time ``t`` between ``a`` (t = 0) and ``b`` (t = 1).

    The flows to time ``t`` come from :func:`motion_at`; both frames are warped there and blended with weights
    ``1 - t`` and ``t``.

    Args:
        a, b: ``(3, H, W)`` or ``(N, 3, H, W)`` float32 frames in [0, 1].
        t: time in [0, 1].
        flow_ab: ``flow(a, b)``, ``(2, H, W)`` or ``(N, 2, H, W)``, pixels.
        flow_ba: ``flow(b, a)``, same shape as ``flow_ab``.
        alpha: softmax splatting sharpness (:func:`motion_at`).
        motion_scale: resolution of the flows to time ``t`` relative to the frames (splatting is the costly
            step and the flows are smooth: a quarter of the resolution lost under 0.02 dB on the benchmark clips
            for a sixteenth of the splatting work).
        mode: sampling of the warp: ``"bicubic"`` (sharp; bilinear blurs sub-pixel shifts, about 1 dB on
            sharp content) or ``"bilinear"``.

    Returns:
        The frame at ``t``, shaped like ``a``, float32 in [0, 1].

    Raises:
        InputError: shapes disagree or ``t`` is outside [0, 1].
    """
    if not 0.0 <= t <= 1.0:
        raise InputError(f"interpolation time must be in [0, 1], got {t}")
    single = a.ndim == 3
    if single:
        a, b, flow_ab, flow_ba = a[None], b[None], flow_ab[None], flow_ba[None]
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3 or flow_ab.shape != flow_ba.shape \
            or flow_ab.shape[-2:] != a.shape[-2:] or flow_ab.shape[:2] != (a.shape[0], 2):
        raise InputError(f"interpolate_pair needs frames (N, 3, H, W) and flows (N, 2, H, W) of one size, got "
                         f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(flow_ab.shape)}, {tuple(flow_ba.shape)}")
    if t in (0.0, 1.0):
        out = a if t == 0.0 else b
    else:
        coarse = coarse_pair(a, b, flow_ab=flow_ab, flow_ba=flow_ba, motion_scale=motion_scale)
        out = _synthesise(a, b, t, coarse, alpha=alpha, mode=mode)
    return out[0] if single else out


def coarse_pair(a: torch.Tensor, b: torch.Tensor, *, flow_ab: torch.Tensor, flow_ba: torch.Tensor,
                motion_scale: float = 0.25) -> tuple[torch.Tensor, ...]:
    """Frames ``(N, 3, H, W)`` and flows ``(N, 2, H, W)`` at ``motion_scale`` of the size (at least 8 pixels):
    ``(a, b, flow_ab, flow_ba)`` at ``(h, w)``, frames area-averaged, flows resized and rescaled."""
    size = a.shape[-2:]
    small = (max(8, round(size[0] * motion_scale)), max(8, round(size[1] * motion_scale)))
    if small[0] >= size[0] or small[1] >= size[1]:
        return a, b, flow_ab, flow_ba
    return _area(a, small), _area(b, small), resize_flow(flow_ab, small), resize_flow(flow_ba, small)


def _area(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average ``(N, C, H, W)`` down to ``size``; on the CPU by OpenCV (several times faster than torch,
    and the same averages where the ratio is a whole number)."""
    if frames.device.type != "cpu" or frames.dtype != torch.float32:
        return F.interpolate(frames, size=size, mode="area")
    planes = frames.contiguous().reshape(-1, *frames.shape[-2:]).numpy()
    out = np.stack([cv2.resize(plane, size[::-1], interpolation=cv2.INTER_AREA) for plane in planes])
    return torch.from_numpy(out).view(*frames.shape[:2], *size)


def _synthesise(a: torch.Tensor, b: torch.Tensor, t: float, coarse: tuple[torch.Tensor, ...], *, alpha: float,
                mode: str) -> torch.Tensor:
    """Frame ``(N, 3, H, W)`` at ``t`` from full-size ``a``, ``b`` and their :func:`coarse_pair`."""
    flow_t0, flow_t1 = motion_at(coarse[0], coarse[1], t, flow_ab=coarse[2], flow_ba=coarse[3], alpha=alpha)
    return warp_blend(a, b, t, flow_t0, flow_t1, mode=mode)


_CV2_MODES = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}


@lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> np.ndarray:
    """Pixel coordinates ``(H, W, 2)`` float32, x then y (cached per size: never write to it)."""
    return np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))


def warp_blend(a: torch.Tensor, b: torch.Tensor, t: float, flow_t0: torch.Tensor, flow_t1: torch.Tensor, *,
               mode: str = "bicubic") -> torch.Tensor:
    """``(1 - t) warp(a, F_t0) + t warp(b, F_t1)``, clamped to [0, 1].

    The flows may be coarser than the frames; they are upsampled as :func:`~coherence.flow.resize_flow` does
    (bilinear, corners aligned, vectors scaled). On the CPU (float32, bicubic or bilinear) OpenCV does the work:
    ``cv2.remap`` samples with the same cubic kernel (Keys, a = -0.75) and clamped-border taps as
    ``grid_sample(..., padding_mode="border", align_corners=True)``, on a 1/32-pixel grid, in about 40 % of the
    time of single-threaded ``grid_sample`` at 640×360. Frames ``a``, ``b``: ``(N, 3, H, W)`` float in [0, 1];
    flows ``(N, 2, h, w)`` from time ``t`` to ``a`` and to ``b`` in pixels of their grid; ``mode``: ``"bicubic"``,
    ``"bilinear"`` (or ``"nearest"``, off the OpenCV path). Returns ``(N, 3, H, W)`` float32 in [0, 1].
    """
    n, _, h, w = a.shape
    if a.device.type != "cpu" or a.dtype != torch.float32 or mode not in _CV2_MODES:
        warped = warp(torch.cat((a, b)), resize_flow(torch.cat((flow_t0, flow_t1)), (h, w)), mode=mode)
        return ((1 - t) * warped[:n] + t * warped[n:]).clamp_(0, 1)
    hs, ws = flow_t0.shape[-2:]
    scale = torch.tensor([(w - 1) / max(ws - 1, 1), (h - 1) / max(hs - 1, 1)] * 2).view(1, 4, 1, 1)
    small = (torch.cat((flow_t0, flow_t1), 1).float() * scale).permute(0, 2, 3, 1).contiguous().numpy()
    # corners aligned: output pixel x reads the coarse grid at x (ws - 1) / (w - 1)
    affine = np.float32([[(ws - 1) / max(w - 1, 1), 0, 0], [0, (hs - 1) / max(h - 1, 1), 0]])
    base, interpolation = _pixel_grid(h, w), _CV2_MODES[mode]
    a, b = a.contiguous(), b.contiguous()
    out = np.empty((n, 3, h, w), np.float32)
    warped = np.empty((3, h, w), np.float32)
    for i in range(n):
        up = small[i] if (hs, ws) == (h, w) else cv2.warpAffine(
            small[i], affine, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        for frame, flow, target in ((a[i], up[..., :2], out[i]), (b[i], up[..., 2:], warped)):
            grid = flow + base
            for c in range(3):
                cv2.remap(frame[c].numpy(), grid, None, interpolation, dst=target[c], borderMode=cv2.BORDER_REPLICATE)
        planes = out[i].reshape(3 * h, w)
        cv2.addWeighted(planes, 1 - t, warped.reshape(3 * h, w), t, 0.0, dst=planes)
    return torch.from_numpy(out.clip(0, 1, out=out))


def source_position(k: int, in_fps: Fraction, out_fps: Fraction) -> Fraction:
    """Exact source position (in input frames) of output frame ``k``: ``(k / out_fps) * in_fps``."""
    return Fraction(k) * Fraction(in_fps) / Fraction(out_fps)


def output_frame_count(frames: int, in_fps: Fraction, out_fps: Fraction) -> int:
    """Number of output frames for ``frames`` inputs: every ``k`` with ``source_position(k) <= frames - 1``."""
    if frames <= 0:
        return 0
    return int((frames - 1) * Fraction(out_fps) / Fraction(in_fps)) + 1


# DIS "medium" with a patch stride of 4 instead of 3 and 3 variational refinement iterations instead of 5: about
# 35 % less flow time for 0.01 dB on the benchmark clips (bikes 30.463 -> 30.452, bunny 39.232 -> 39.221 dB);
# the synthesis reads the flows at a quarter of the resolution (interpolate_pair's motion_scale), where the
# sparser patches and shorter refinement hardly show. A coarser finest scale (the "fast" preset) lost 0.4-0.5 dB.
DIS_OPTIONS: dict[str, Any] = {"patch_stride": 4, "refinement_iterations": 3}


@dataclass
class _Sample:
    """One distinct image on the source time line: exact at ``position``; its run starts at input ``first``."""

    frame: torch.Tensor
    position: Fraction
    first: int
    cut: bool
    # the flows between the previous sample and this one (coarse_pair), estimated on the background thread
    coarse: Future[tuple[torch.Tensor, ...]] | None = None


class Interpolator:
    """Streaming frame-rate conversion stage (see the module docstring for the method and the timing).

    Args:
        factor: integer rate multiplier (2 doubles the rate); give this or ``to_fps``.
        to_fps: exact output rate (e.g. ``24`` or ``Fraction(30000, 1001)``).
        flow: flow backend name or instance (default DIS, ``medium`` preset with :data:`DIS_OPTIONS`).
        flow_options: options for :func:`get_flow` when ``flow`` is a name (for ``"dis"``, over
            :data:`DIS_OPTIONS`).
        device: where frames are warped and blended.
        scene_cuts: detect cuts and hold across them (turn off only for footage known to be one shot).
        max_duplicate_run: runs of up to this many duplicate frames are re-timed as one image (1 = never).
        duplicate_threshold: mean absolute difference (0..1 scale) below which two frames are duplicates.
        alpha: softmax splatting sharpness (:func:`motion_at`).

    Raises:
        ConfigError: neither or both of ``factor`` and ``to_fps``, or values out of range.
    """

    name = "interpolate"
    radius = 1

    def __init__(self, *, factor: int | None = None, to_fps: str | float | Fraction | None = None,
                 flow: str | FlowEstimator = "dis", flow_options: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu", scene_cuts: bool = True, max_duplicate_run: int = 4,
                 duplicate_threshold: float = 0.5 / 255, alpha: float = 20.0) -> None:
        if (factor is None) == (to_fps is None):
            raise ConfigError("give exactly one of an interpolation factor and a target frame rate")
        if factor is not None and (int(factor) != factor or factor < 1):
            raise ConfigError(f"the interpolation factor must be a whole number >= 1, got {factor}")
        if max_duplicate_run < 1:
            raise ConfigError(f"max_duplicate_run must be >= 1, got {max_duplicate_run}")
        self.factor = int(factor) if factor is not None else None
        self.to_fps = parse_fps(to_fps) if to_fps is not None else None
        self.device = torch.device(device)
        options = {**DIS_OPTIONS, **(flow_options or {})} if flow == "dis" else flow_options or {}
        self.flow = get_flow(flow, **options)
        self.scene_cuts = scene_cuts
        self.max_duplicate_run = max_duplicate_run
        self.duplicate_threshold = duplicate_threshold
        self.alpha = alpha
        self.flow_pairs = 0  # flow pairs computed by the last process() (for tests and logs)

    def output_fps(self, fps: Fraction) -> Fraction:
        """Output rate for an input at ``fps``."""
        return self.to_fps if self.to_fps is not None else parse_fps(fps) * self.factor

    def _is_duplicate(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        return float((a - b).abs().mean()) < self.duplicate_threshold

    def _samples(self, frame: torch.Tensor, first: int, length: int, cut: bool) -> list[_Sample]:
        """The time-line samples of a run of ``length`` identical frames starting at input ``first``."""
        if length <= self.max_duplicate_run:
            return [_Sample(frame, Fraction(first) + Fraction(length - 1, 2), first, cut)]
        return [_Sample(frame, Fraction(first), first, cut), _Sample(frame, Fraction(first + length - 1), first, False)]

    def _coarse(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Both flows of a pair of ``(3, H, W)`` frames, and the :func:`coarse_pair` every ``t`` between uses."""
        flow_ab, flow_ba = self.flow(a[None], b[None]).to(self.device), self.flow(b[None], a[None]).to(self.device)
        return coarse_pair(a[None], b[None], flow_ab=flow_ab, flow_ba=flow_ba)

    def _needs_flow(self, prev: _Sample, sample: _Sample, step: Fraction) -> bool:
        """Whether an output time falls strictly between two samples that are neither a cut nor one image."""
        if sample.cut or prev.frame is sample.frame:
            return False
        first = (prev.position // step + 1) * step
        return first < sample.position

    def process(self, frames: Iterable[torch.Tensor], fps: str | float | Fraction) -> Iterator[torch.Tensor]:
        """Convert a stream of ``(3, H, W)`` float32 frames in [0, 1] at ``fps`` to :meth:`output_fps`.

        Holds two runs of identical frames, the previous distinct frame and two pairs of flows at a time. The
        flows of a pair are estimated on a background thread (OpenCV releases the GIL) while the frames of the
        pair before are synthesised, so the output at source position ``s`` is yielded once input
        ``floor(s) + 3`` has been read (later inside a run of duplicates).

        Yields:
            ``(3, H, W)`` float32 frames in [0, 1] on ``device``, output frame ``k`` at time ``k / out_fps``.

        Raises:
            InputError: a frame is not ``(3, H, W)`` or changes size.
        """
        in_fps = parse_fps(fps)
        step = in_fps / self.output_fps(in_fps)
        self.flow_pairs = 0
        # one thread, so a flow backend is never called concurrently
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coherence-flow")
        try:
            yield from self._process(frames, step, pool)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _process(self, frames: Iterable[torch.Tensor], step: Fraction,
                 pool: ThreadPoolExecutor) -> Iterator[torch.Tensor]:
        detector = SceneCutDetector()
        state: dict[str, Any] = {"k": 0, "prev": None}
        pending: list[_Sample] = []  # samples whose segment is not emitted yet, oldest first

        def emit_until(sample: _Sample) -> Iterator[torch.Tensor]:
            """Frames at every position before ``sample``, in the segment from the previous sample."""
            prev: _Sample | None = state["prev"]
            while state["k"] * step < sample.position:
                pos = state["k"] * step
                if prev is None or pos <= prev.position:
                    yield sample.frame if prev is None else prev.frame
                elif sample.cut:
                    yield prev.frame if pos < sample.first else sample.frame
                elif prev.frame is sample.frame or sample.coarse is None:
                    yield prev.frame
                else:
                    t = float((pos - prev.position) / (sample.position - prev.position))
                    yield _synthesise(prev.frame[None], sample.frame[None], t, sample.coarse.result(),
                                      alpha=self.alpha, mode="bicubic")[0]
                state["k"] += 1
            sample.coarse = None
            state["prev"] = sample

        def add(sample: _Sample, *, keep: int) -> Iterator[torch.Tensor]:
            """Queue ``sample``, start its flows, and emit the segments of all but the ``keep`` newest samples."""
            before = pending[-1] if pending else state["prev"]
            if before is not None and self._needs_flow(before, sample, step):
                self.flow_pairs += 1
                sample.coarse = pool.submit(self._coarse, before.frame, sample.frame)
            pending.append(sample)
            while len(pending) > keep:
                yield from emit_until(pending.pop(0))

        run: tuple[torch.Tensor, int, int, bool] | None = None  # (frame, first index, length, cut before)
        count = 0
        for frame in frames:
            if frame.ndim != 3 or frame.shape[0] != 3:
                raise InputError(f"interpolation expects (3, H, W) frames, got {tuple(frame.shape)}")
            frame = frame.to(self.device, torch.float32)
            if run is not None and frame.shape != run[0].shape:
                raise InputError(f"frame {count} has size {tuple(frame.shape)} but earlier frames have "
                                 f"{tuple(run[0].shape)}")
            cut = self.scene_cuts and detector.update(frame)
            if run is not None and not cut and self._is_duplicate(run[0], frame):
                run = (run[0], run[1], run[2] + 1, run[3])
            else:
                if run is not None:
                    for sample in self._samples(*run):
                        yield from add(sample, keep=1)
                run = (frame, count, 1, cut)
            count += 1
        if run is None:
            raise InputError("interpolation got no frames")
        for sample in self._samples(*run):
            yield from add(sample, keep=0)
        last = state["prev"].frame
        while state["k"] * step <= count - 1:
            yield last
            state["k"] += 1
        log.debug("interpolated %d frames into %d with %d flow pairs", count, state["k"], self.flow_pairs)


def interpolate(frames: torch.Tensor, fps: str | float | Fraction, *, factor: int | None = None,
                to_fps: str | float | Fraction | None = None, **options: Any) -> tuple[torch.Tensor, Fraction]:
    """Interpolate a whole clip held in memory.

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        fps: input rate.
        factor, to_fps: exactly one: integer multiplier or exact output rate.
        options: further keywords of :class:`Interpolator` (``flow``, ``device``, ``scene_cuts``...).

    Returns:
        ``((T', 3, H, W) frames, output fps)`` with ``T' = output_frame_count(T, fps, out_fps)``.
    """
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        raise InputError(f"interpolate expects a (T, 3, H, W) clip, got {tuple(frames.shape)}")
    stage = Interpolator(factor=factor, to_fps=to_fps, **options)
    out_fps = stage.output_fps(parse_fps(fps))
    return torch.stack(list(stage.process(frames, fps))), out_fps
