"""Flow-based frame interpolation to any integer factor or target frame rate, scene-cut and duplicate aware.

Synthesis (:mod:`coherence.synthesis`): bidirectional flow (DIS by default) splatted forward to each output
time, both frames warped there and blended by time; revealed areas come from the frame that sees them. Pixels
move on parabolas where the flows of the neighbouring pairs (same scene, distinct images) give their
acceleration, on straight lines where not.

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
from typing import Any, cast

import torch

from coherence.clip import parse_fps
from coherence.errors import ConfigError, InputError
from coherence.flow import FlowEstimator, flow_both_ways, get_flow
from coherence.scenes import SceneCutDetector
from coherence.synthesis import acceleration, coarse_pair, synthesise

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
# output fall with strength, by about three quarters of the full-strength gain at 0.6, while fidelity falls
# 3.7-4.3 dB from 0.6 to 1; LaVie at 0.6 is 37.9 dB, just outside). LaVie clips stand in for
# ModelScope/Zeroscope; no Wan clip was at hand, so Wan's 0.6 is provisional.
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


def source_position(k: int, in_fps: Fraction, out_fps: Fraction) -> Fraction:
    """Exact source position (in input frames) of output frame ``k``: ``(k / out_fps) * in_fps``."""
    return Fraction(k) * Fraction(in_fps) / Fraction(out_fps)


def output_frame_count(frames: int, in_fps: Fraction, out_fps: Fraction) -> int:
    """Number of output frames for ``frames`` inputs: every ``k`` with ``source_position(k) <= frames - 1``."""
    if frames <= 0:
        return 0
    return int((frames - 1) * Fraction(out_fps) / Fraction(in_fps)) + 1


# DIS "medium" with a patch stride of 4 instead of 3 and 1 variational refinement iteration instead of 5: about
# 45 % less flow time (16.0 -> 8.5 ms a call at 640x360 on one core; 10.3 with 3 iterations) for no loss on the
# benchmark clips (x2, 1 against 3 iterations: bikes +0.06 dB, bunny and the 24 GIFs -0.01 on average,
# CogVideoX -0.04 to -0.01). The synthesis reads the flows at a quarter of the resolution (interpolate_pair's
# motion_scale), where the sparser patches and shorter refinement hardly show. A coarser finest scale (the "fast"
# preset) lost 0.4-0.5 dB; no refinement at all lost up to 0.07.
DIS_OPTIONS: dict[str, Any] = {"patch_stride": 4, "refinement_iterations": 1}


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
        alpha: softmax splatting sharpness (:func:`coherence.synthesis.motion_at`).

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
        flow_ab, flow_ba = flow_both_ways(self.flow, a[None], b[None])
        return coarse_pair(a[None], b[None], flow_ab=flow_ab.to(self.device), flow_ba=flow_ba.to(self.device))

    @staticmethod
    def _bends(before: _Sample | None, prev: _Sample, sample: _Sample, after: _Sample | None,
               coarse_before: tuple[torch.Tensor, ...] | None,
               coarse: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The :func:`acceleration` of ``prev`` (towards ``sample``) and of ``sample`` (towards ``prev``), from
        the flows of the segments on either side where they have any (``None`` for a straight path)."""
        span = sample.position - prev.position
        step = prev.frame.shape[-1] / coarse[0].shape[-1]
        bend_prev = bend_next = None
        if before is not None and coarse_before is not None:
            ratio = float((prev.position - before.position) / span)
            bend_prev = acceleration(coarse[2], coarse_before[3], coarse_before[2], ratio=ratio, grid_step=step)
        if after is not None and after.coarse is not None:
            coarse_after = after.coarse.result()
            ratio = float((after.position - sample.position) / span)
            bend_next = acceleration(coarse[3], coarse_after[2], coarse_after[3], ratio=ratio, grid_step=step)
        return bend_prev, bend_next

    def _needs_flow(self, prev: _Sample, sample: _Sample, step: Fraction) -> bool:
        """Whether an output time falls strictly between two samples that are neither a cut nor one image."""
        if sample.cut or prev.frame is sample.frame:
            return False
        first = (prev.position // step + 1) * step
        return first < sample.position

    def process(self, frames: Iterable[torch.Tensor], fps: str | float | Fraction) -> Iterator[torch.Tensor]:
        """Convert a stream of ``(3, H, W)`` float32 frames in [0, 1] at ``fps`` to :meth:`output_fps`.

        Holds two runs of identical frames, the three distinct frames before them and three pairs of flows at a
        time. The flows of a pair are estimated on a background thread (OpenCV releases the GIL) while the frames
        two pairs before are synthesised, with the flows of the pairs on either side bending the paths, so the
        output at source position ``s`` is yielded once input ``floor(s) + 4`` has been read (later inside a run
        of duplicates).

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
        # k: next output frame; prev: the sample the next segment starts from; before: the one before it, and
        # coarse: the flows between the two (None where that segment had none)
        state: dict[str, Any] = {"k": 0, "prev": None, "before": None, "coarse": None}
        pending: list[_Sample] = []  # samples whose segment is not emitted yet, oldest first

        def emit_until(sample: _Sample) -> Iterator[torch.Tensor]:
            """Frames at every position before ``sample``, in the segment from the previous sample."""
            prev: _Sample | None = state["prev"]
            bends: tuple[torch.Tensor | None, torch.Tensor | None] | None = None
            while state["k"] * step < sample.position:
                pos = state["k"] * step
                if prev is None or pos <= prev.position:
                    yield sample.frame if prev is None else prev.frame
                elif sample.cut:
                    yield prev.frame if pos < sample.first else sample.frame
                elif prev.frame is sample.frame:
                    yield prev.frame
                else:  # a time strictly between two distinct images: add() started their flows (_needs_flow)
                    t = float((pos - prev.position) / (sample.position - prev.position))
                    coarse = cast("Future[tuple[torch.Tensor, ...]]", sample.coarse).result()
                    if bends is None:
                        bends = self._bends(state["before"], prev, sample, pending[0] if pending else None,
                                            state["coarse"], coarse)
                    yield synthesise(prev.frame[None], sample.frame[None], t, coarse,
                                      alpha=self.alpha, mode="bicubic", accelerations=bends)[0]
                state["k"] += 1
            # this segment's flows bend the next one's paths (when it had any: not a cut, a hold or a still)
            state["coarse"] = None if sample.coarse is None else sample.coarse.result()
            sample.coarse = None
            state["before"], state["prev"] = prev, sample

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
                        yield from add(sample, keep=2)
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
