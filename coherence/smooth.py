"""Flow-guided temporal smoothing: deflicker, then filter along the flow trajectories, streaming.

For each frame ``t`` (all inside its scene; nothing crosses a cut):

1. **Illumination and colour** (:mod:`coherence.deflicker`): coarse flow (DIS ultrafast at half resolution, on
   frames divided by their own local mean, :func:`~coherence.deflicker.flow_image`, so that the flicker does
   not break brightness constancy) aligns the neighbours within ``window`` seconds on ~64-pixel log
   thumbnails; the occlusion- and outlier-weighted mean log ratio (nearer neighbours weigh more), smoothed
   spatially (finer where the field is strong, :func:`~coherence.deflicker.fitted_field`), is the correction: a
   per-channel gain plus a smooth achromatic local field. The window is in
   seconds as flicker is a matter of time: 8 fps generator output gets a few neighbours, 30 fps footage more.
2. **Trajectories** (noise, boiling, dithering, residual flicker): flow between consecutive *corrected* frames
   (:data:`TRAJECTORY_DIS` at full resolution by default, estimated on a background thread) and its forward-backward
   and motion-boundary occlusion tests define where a pixel's trajectory continues. Along it, a causal and an
   anti-causal normalised exponential filter (:func:`coherence.trajectory.trajectory_step`, weight ``decay ** k`` for
   a frame ``k`` steps away, reset wherever the occlusion test fails) are combined so that frame ``t`` counts once.
   The decay is the preset's, raised on a clip noisier than the presets are sized for (:mod:`coherence.noise`,
   measured on the clip's first aligned pairs before the first frame is filtered).
   Each frame's samples weigh the inverse of the noise variance the correction left them
   (:func:`~coherence.deflicker.correction_precision`: a frame brightened by 1.3 had its noise amplified with it). A
   pixel that the input clipped and the correction moved off the clip is a bound, not a sample
   (:mod:`coherence.censoring`): the neighbours that agree with it fill it in. This is the minimiser of the warping
   error along the flow plus a fidelity term to the frame (a first-order Whittaker smoother, whose impulse response
   is that two-sided exponential; the anti-causal half is truncated after ``lookahead`` frames, where ``decay **
   lookahead`` is negligible).
3. **Shake** (only with ``dejitter``, :mod:`coherence.dejitter`): the accumulators also carry where each
   trajectory went, which says how far the frame sits off its smoothed path; the part of that shift its
   neighbours do not share is shake, and the frame is moved back by it. Off by default: generated clips' own
   shake is part of what their fidelity and warping error are measured against.

Frame ``t``'s neighbours are aligned onto it and it carries the largest weight (unless censored, or brightened by
the correction well beyond them), so motion is neither lagged nor averaged away (the output stays nearest its own
input frame); where the flow cannot follow (occlusions, motion boundaries) a pixel has little but its own value to
average, and a bilateral filter stands in for the missing part of its support (:mod:`coherence.fallback`; the
preset's ``spatial`` colour scale). Last, a bilateral filter on the chroma planes alone (:mod:`coherence.chroma`;
the preset's ``chroma`` scale) takes out the chroma noise the temporal average left. Memory holds ``radius + 3 *
lookahead`` frames ahead (the anti-causal pass runs once per block of ``lookahead`` frames and reads two blocks; one
more keeps the flow thread busy) and one accumulator behind, whatever the clip's length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import torch

from coherence.censoring import Censored, censored_link_weights, find_censored, own_weights
from coherence.chroma import denoise_chroma
from coherence.clip import parse_fps
from coherence.deflicker import (
    aligned_ratios,
    apply_correction,
    correction_precision,
    fitted_field,
    flow_image,
    log_thumbnail,
    resize,
    thumb_size,
    window_flows,
    window_weights,
)
from coherence.dejitter import SHAKE_SPAN, ShakeQueue
from coherence.errors import ConfigError, InputError
from coherence.fallback import spatial_fallback
from coherence.flow import FlowEstimator, flow_both_ways, get_flow
from coherence.flow.ops import resize_flow
from coherence.noise import DECAY_CEILING, MIN_ADAPTED_SIDE, NOISE_PAIRS, adapted_decay, is_palette, link_noise
from coherence.scenes import SceneCutDetector
from coherence.smooth_presets import SMOOTH_PRESETS
from coherence.trajectory import homogeneous, normalise, support, trajectory_offset, trajectory_step, trajectory_weights

log = logging.getLogger(__name__)

# the flow is estimated on at least this long a side (unless the frame is smaller)
_MIN_FLOW_SIDE = 160
# the anti-causal pass stops where a frame's weight falls below this share of frame t's, or after this many frames
_NEGLIGIBLE = 0.01
_MAX_LOOKAHEAD = 16
# resolution of the illumination step's flow, as a fraction of the frame size
_ALIGN_SCALE = 0.5
# DIS "medium" with 3 refinement iterations, not 5, takes 9% off the whole process (two flows a frame are half its
# CPU); decay 0.31, not 0.3, kept the clips' figures with it (1 iteration fell below the generated clips' curve), until
# the chroma filter took default's decay back to 0.3
TRAJECTORY_DIS: dict[str, object] = {"preset": "medium", "refinement_iterations": 3}


@dataclass
class _Record:
    """One frame in the window and what was derived from it once."""

    frame: torch.Tensor  # (3, H, W) input
    scene: int
    half: torch.Tensor  # (1, 3, h2, w2) what the illumination flow sees (flow_image)
    thumb: tuple[torch.Tensor, torch.Tensor]  # log thumbnail, per-channel usable mask
    to_next_thumb: torch.Tensor | None = None  # flow(t, t+1) on the thumbnail grid
    to_prev_thumb: torch.Tensor | None = None  # flow(t, t-1) on the thumbnail grid
    corrected: torch.Tensor | None = None  # (3, H, W) after the illumination correction
    censored: Censored | None = None  # where corrected is a bound on the content, not its value
    own: torch.Tensor | None = None  # (H, W, 4) homogeneous(corrected), made once
    to_next: torch.Tensor | None = None  # (1, 2, H, W) flow(t, t+1) between corrected frames, full size
    to_prev: torch.Tensor | None = None  # (1, 2, H, W) flow(t, t-1) between corrected frames
    held: torch.Tensor | None = None  # (2, H, W, 1) where to_next's and the next frame's to_prev's trajectories hold
    weight_next: torch.Tensor | None = None  # (H, W, 1) decay where to_next passes the occlusion tests, else 0
    weight_prev: torch.Tensor | None = None  # (H, W, 1) decay where to_prev passes the occlusion tests, else 0
    link: Future[torch.Tensor] | None = None  # the trajectory flows of (t, t+1), being estimated in the background


class Smoother:
    """The smoothing stage (see the module docstring); implements :class:`coherence.stage.Stage`.

    Args:
        preset: a key of :data:`SMOOTH_PRESETS`.
        strength: 0..1, how much of the correction and of the temporal filter is applied (0 returns the input).
        radius: illumination window in frames on each side, instead of the preset's ``window`` in seconds (0 turns
            the deflicker off).
        flow: flow backend name or instance for the trajectories (default DIS, :data:`TRAJECTORY_DIS`).
        flow_weights: local weights file for a backend that needs weights (RAFT).
        flow_scale: resolution of the trajectory flow, as a fraction of the frame size.
        dejitter: largest shift in pixels that moves a frame onto its trajectories' smoothed positions
            (:func:`coherence.trajectory.trajectory_offset`; 0, the default, leaves positions as they are). For
            camera-like shake: it also takes out the shake that generated clips carry in their content, so their
            warping error measured with their own flow goes up.
        device: torch device for the computation (``"cpu"``, ``"cuda"``); outputs come back on it.
    """

    name = "smooth"

    def __init__(self, *, preset: str = "default", strength: float = 1.0, radius: int | None = None,
                 flow: str | FlowEstimator = "dis", flow_weights: str | Path | None = None, flow_scale: float = 1.0,
                 dejitter: float = 0.0, device: str | torch.device = "cpu") -> None:
        if preset not in SMOOTH_PRESETS:
            raise ConfigError(f"unknown smoothing preset {preset!r}; choose one of {', '.join(SMOOTH_PRESETS)}")
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must be between 0 and 1, got {strength}")
        settings = SMOOTH_PRESETS[preset]
        if radius is not None and not 0 <= radius <= 64:
            raise ConfigError(f"radius must be in 0..64, got {radius}")
        self.settings = settings
        self.fixed_radius = radius
        if not 0.1 <= flow_scale <= 1.0:
            raise ConfigError(f"flow scale must be in [0.1, 1], got {flow_scale}")
        if not 0.0 <= dejitter <= 16.0:
            raise ConfigError(f"dejitter must be between 0 and 16 pixels, got {dejitter}")
        self.strength = strength
        self.flow_scale = flow_scale
        self.dejitter = dejitter
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"unknown device {device!r}") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
        if flow_weights is not None and not (isinstance(flow, str) and flow.startswith("raft")):
            raise ConfigError(f"flow weights apply to the RAFT backends, not to {flow!r}")
        options: dict[str, object] = {"device": self.device, **(TRAJECTORY_DIS if flow == "dis" else {})}
        if flow_weights is not None:
            options["weights_path"] = flow_weights
        self.flow = get_flow(flow, **options) if isinstance(flow, str) else flow
        # the illumination step only needs coarse alignment of thumbnails: DIS ultrafast on flow_image
        self.align_flow = get_flow("dis", preset="ultrafast", device=self.device)
        # the Stage's context on each side, at 30 fps (the illumination window is in seconds)
        self.radius = self.illumination_radius(Fraction(30)) + 3 * self.lookahead + (SHAKE_SPAN if dejitter else 0)

    @property
    def decay(self) -> float:
        """Weight ratio of consecutive frames along a trajectory: the preset's, scaled by ``strength`` (the least a
        clip gets: a noisy one gets more, :mod:`coherence.noise`)."""
        return self.strength * self.settings.decay

    @property
    def lookahead(self) -> int:
        """The most later frames the anti-causal pass reads (for the highest decay a clip's noise can call for)."""
        return lookahead(self.strength * max(self.settings.decay, DECAY_CEILING) if self.settings.decay > 0 else 0.0)

    def illumination_radius(self, fps: Fraction) -> int:
        """Neighbours on each side that the illumination step compares a frame with, at ``fps``."""
        if self.fixed_radius is not None:
            return self.fixed_radius
        return min(64, max(1, round(self.settings.window * float(fps))))

    def output_fps(self, fps: Fraction) -> Fraction:
        """Smoothing keeps the frame rate."""
        return fps

    def process(self, frames: Iterable[torch.Tensor], fps: Fraction) -> Iterator[torch.Tensor]:
        """Smooth a stream of ``(3, H, W)`` float32 frames in [0, 1]; yields as many frames, same size.

        Frames are yielded about ``illumination_radius(fps) + 3 * lookahead`` frames after they arrive (sooner at a
        cut or at the end).

        Raises:
            InputError: a frame that is not ``(3, H, W)`` or whose size differs from the first.
        """
        if self.strength == 0.0:
            yield from frames
            return
        rate = parse_fps(fps)
        yield from _Run(self, self.illumination_radius(rate)).process(frames)


def lookahead(decay: float) -> int:
    """Later frames the anti-causal pass of ``decay`` reads: until ``decay ** k`` falls below :data:`_NEGLIGIBLE`
    (at most :data:`_MAX_LOOKAHEAD`)."""
    if decay <= 0:
        return 0
    return min(_MAX_LOOKAHEAD, max(1, math.ceil(math.log(_NEGLIGIBLE) / math.log(decay))))


class _Run:
    """The state of one pass over one stream: the window of records and what has been emitted."""

    def __init__(self, smoother: Smoother, radius: int) -> None:
        self.s = smoother
        self.radius = radius
        # the preset's until the clip's noise is measured (_settle), before the first frame is filtered
        self.decay = smoother.decay
        self.lookahead = lookahead(self.decay)
        self.settled = False
        self.dejitter = smoother.strength * smoother.dejitter
        self.records: dict[int, _Record] = {}
        self.detector = SceneCutDetector()
        self.last, self.next_correct, self.next_out = -1, 0, 0
        self.size: tuple[int, int] | None = None
        # the forward accumulator of the last output frame: (index, (H, W, 4)), and the backward accumulators
        # computed ahead of their output (one pass per block of frames)
        self.forward: tuple[int, torch.Tensor] | None = None
        self.backward: dict[int, torch.Tensor] = {}
        # filtered frames wait there until their shake can be told from motion
        self.shake = ShakeQueue(span=SHAKE_SPAN if self.dejitter > 0 else 0)
        # one background thread estimates the trajectory flows (OpenCV and torch release the GIL) while this one
        # filters earlier frames; one thread, so a flow backend is never called concurrently
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coherence-flow")

    def process(self, frames: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        try:
            yield from self._process(frames)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _process(self, frames: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        scene = 0
        for frame in frames:
            frame = self._check(frame)
            if self.detector.update(frame):
                scene += 1
            record = self._record(frame, scene)
            previous = self.records.get(self.last)
            self.last += 1
            self.records[self.last] = record
            if previous is not None and previous.scene == scene:
                self._link_thumbs(previous, record)
            yield from self._drain(finished=False)
        yield from self._drain(finished=True)

    # -- per frame ---------------------------------------------------------------------------------------
    def _check(self, frame: torch.Tensor) -> torch.Tensor:
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise InputError(f"smoothing needs (3, H, W) frames, got {tuple(frame.shape)}")
        size = (frame.shape[1], frame.shape[2])
        self.size = self.size or size
        if size != self.size:
            raise InputError(f"frame {self.last + 1} is {size[1]}x{size[0]} but the clip is "
                             f"{self.size[1]}x{self.size[0]}")
        return frame.to(self.s.device, torch.float32)

    def _record(self, frame: torch.Tensor, scene: int) -> _Record:
        h, w = frame.shape[-2:]
        # small frames keep enough pixels for the flow to resolve their motion
        scale = max(_ALIGN_SCALE, min(1.0, _MIN_FLOW_SIDE / max(h, w)))
        half_size = (max(8, round(h * scale)), max(8, round(w * scale)))
        half = flow_image(resize(frame[None], half_size, mode="area"))
        return _Record(frame=frame, scene=scene, half=half, thumb=log_thumbnail(frame, thumb_size(h, w)))

    def _link_thumbs(self, a: _Record, b: _Record) -> None:
        """Both coarse flows of a consecutive pair, for the illumination step, on the thumbnail grid."""
        forward, backward = flow_both_ways(self.s.align_flow, a.half, b.half)
        size = a.thumb[0].shape[-2:]
        a.to_next_thumb = resize_flow(forward, size, align_corners=False)
        b.to_prev_thumb = resize_flow(backward, size, align_corners=False)

    def _link_frames(self, a: _Record, b: _Record) -> torch.Tensor:
        """Both trajectory flows ``(2, 2, h, w)`` of a consecutive pair of corrected frames, on the flow's grid
        (run on the flow thread: nothing else, so that it keeps pace with this one)."""
        first, second = cast(torch.Tensor, a.corrected)[None], cast(torch.Tensor, b.corrected)[None]
        h, w = first.shape[-2:]
        if self.s.flow_scale < 1.0:
            size = (max(8, round(h * self.s.flow_scale)), max(8, round(w * self.s.flow_scale)))
            first, second = resize(first, size, mode="area"), resize(second, size, mode="area")
        return torch.cat(flow_both_ways(self.s.flow, first, second))

    # -- windows -----------------------------------------------------------------------------------------
    def _chain(self, t: int, reach: int, direction: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """Thumbnail flows between ``t`` and each neighbour ``t + direction * j`` (``j = 1..reach``) in ``t``'s
        scene."""
        forward, backward, indices = [], [], []
        for j in range(1, reach + 1):
            near, far = self.records.get(t + direction * (j - 1)), self.records.get(t + direction * j)
            if near is None or far is None or far.scene != near.scene:
                break
            f, b = (near.to_next_thumb, far.to_prev_thumb) if direction > 0 else (near.to_prev_thumb, far.to_next_thumb)
            forward.append(f)
            backward.append(b)
            indices.append(t + direction * j)
        return [(s, to_s, from_s) for s, (to_s, from_s) in zip(indices, window_flows(forward, backward), strict=True)]

    def _arrived(self, t: int, reach: int, finished: bool) -> bool:
        """Whether every frame of ``t``'s scene up to ``t + reach`` has arrived."""
        return finished or self.last >= t + reach or self.records[self.last].scene != self.records[t].scene

    def _correct(self, t: int) -> None:
        record = self.records[t]
        neighbours, distances = [], []
        for direction in (1, -1):
            for index, to_s, from_s in self._chain(t, self.radius, direction):
                neighbours.append((*self.records[index].thumb, to_s, from_s))
                distances.append(abs(index - t))
        size = tuple(record.frame.shape[-2:])
        weight = None  # the frame's own weights in the trajectory filter: 1 unless set below
        if not neighbours:
            record.corrected = record.frame
        else:
            sigma = self.s.settings.field_scale * max(record.thumb[0].shape[-2:])
            ratio, valid = aligned_ratios(record.thumb, neighbours)
            field = fitted_field(ratio, valid, sigma=sigma,
                                 temporal=window_weights(torch.tensor(distances), self.radius))
            record.corrected = apply_correction(record.frame, field, strength=self.s.strength)
            weight = correction_precision(field, size, strength=self.s.strength)
        record.censored = find_censored(record.frame, record.corrected)
        if record.censored is not None:
            censored = own_weights(record.censored, size)
            weight = censored if weight is None else censored.mul_(weight)
        record.own = homogeneous(record.corrected, weight=weight, geometry=self.dejitter > 0)
        previous = self.records.get(t - 1)
        if previous is not None and previous.scene == record.scene:
            previous.link = self.pool.submit(self._link_frames, previous, record)

    def _settle(self, finished: bool) -> bool:
        """Fix the decay to the clip's noise, measured on its first :data:`~coherence.noise.NOISE_PAIRS` aligned
        pairs (:mod:`coherence.noise`; a palette clip and a small frame keep the preset's); whether it is fixed (it
        waits for those pairs' flows)."""
        if not self.settled and (finished or self.next_correct > NOISE_PAIRS):
            frame, pairs = self.records[0].frame, range(min(NOISE_PAIRS, self.next_correct - 1))
            small = min(frame.shape[-2:]) < MIN_ADAPTED_SIDE
            palette = not small and is_palette(frame)
            readings = [] if small or palette else [
                link_noise(cast(torch.Tensor, record.corrected), cast(torch.Tensor, self.records[s + 1].corrected),
                           cast(torch.Tensor, record.to_next), record.held[0, ..., 0])
                for s in pairs if (record := self._resolved(s)).held is not None]
            known = sorted(r for r in readings if r is not None)
            noise = known[len(known) // 2] if known else None
            self.decay = self.s.strength * adapted_decay(self.s.settings.decay, noise)
            self.lookahead = lookahead(self.decay)
            self.settled = True
            reason = "a small frame" if small else "a palette clip" if palette else None
            log.debug("noise %s: trajectory decay %.3f", f"not measured on {reason}" if reason else
                      "unmeasured" if noise is None else f"{noise:.2f}", self.decay)
        return self.settled

    def _resolved(self, t: int) -> _Record:
        """Record ``t`` once the trajectory flows between it and ``t + 1``, and where they hold, are there (if that
        pair is linked)."""
        record = self.records[t]
        if record.link is not None:
            flows, record.held = trajectory_weights(record.link.result(), tuple(record.frame.shape[-2:]))
            record.to_next, self.records[t + 1].to_prev = flows[:1], flows[1:]
            record.link = None
        return record

    def _linked(self, t: int) -> _Record:
        """Record ``t`` with its weights of frame ``t + 1`` and that frame's of it (if that pair is linked)."""
        record = self._resolved(t)
        if record.held is not None:
            weights = record.held.mul_(self.decay)
            following = self.records[t + 1]
            first, second = cast(torch.Tensor, record.corrected), cast(torch.Tensor, following.corrected)
            record.weight_next = censored_link_weights(weights[0], record.censored, first, second,
                                                       cast(torch.Tensor, record.to_next), decay=self.decay)
            following.weight_prev = censored_link_weights(weights[1], following.censored, second, first,
                                                          cast(torch.Tensor, following.to_prev), decay=self.decay)
            record.held = None
        return record

    def _later(self, t: int, reach: int) -> list[int]:
        """Corrected frames after ``t`` in its scene, at most ``reach`` of them."""
        later = []
        for s in range(t + 1, t + reach + 1):
            record = self.records.get(s)
            if record is None or s >= self.next_correct or record.scene != self.records[t].scene:
                break
            later.append(s)
        return later

    def _filter(self, t: int) -> None:
        """Frame ``t`` filtered along its trajectories: a causal and an anti-causal normalised exponential
        filter (:func:`trajectory_step`), combined so that frame ``t`` counts once; queued with the shift that
        would put it on its smoothed trajectories."""
        if t > 0 and t - 1 in self.records:
            self._linked(t - 1)
        record = self._linked(t)
        own = cast(torch.Tensor, record.own)
        forward = own
        if self.forward is not None and self.forward[0] == t - 1 and record.to_prev is not None:
            forward = trajectory_step(own, self.forward[1], record.to_prev, cast(torch.Tensor, record.weight_prev))
        self.forward = (t, forward)
        if t not in self.backward:
            self._backward_block(t)
        backward = self.backward.pop(t)
        shift = trajectory_offset(forward, backward, own, limit=self.dejitter) if self.dejitter > 0 else (0.0, 0.0)
        self.shake.add(t, record.scene, forward + backward - own, shift)

    def _backward_block(self, t: int) -> None:
        """Anti-causal accumulators of frames ``t .. t + lookahead - 1``, from one pass that starts up to
        ``2 * lookahead`` frames ahead: each frame's accumulator reaches at least ``lookahead`` frames, and the
        pass costs two steps per frame instead of ``lookahead``."""
        indices = [t, *self._later(t, 2 * self.lookahead)]
        block = range(t, t + max(1, self.lookahead))
        state = cast(torch.Tensor, self.records[indices[-1]].own)
        if indices[-1] in block:
            self.backward[indices[-1]] = state
        for s in reversed(indices[:-1]):
            near = self._linked(s)
            state = trajectory_step(cast(torch.Tensor, near.own), state, cast(torch.Tensor, near.to_next),
                                    cast(torch.Tensor, near.weight_next))
            if s in block:
                self.backward[s] = state

    def _drain(self, *, finished: bool) -> Iterator[torch.Tensor]:
        while self.next_correct <= self.last and self._arrived(self.next_correct, self.radius, finished):
            self._correct(self.next_correct)
            self.next_correct += 1
        while self.next_out < self.next_correct and self._settle(finished):
            t = self.next_out
            reach = 2 * self.lookahead
            # a block is filtered once a further block of frames is corrected, so that the flow thread has those
            # pairs queued while this one filters (without it the two threads take turns, idle a quarter each)
            ready = t in self.backward or self._arrived(t, reach, finished) and (
                finished or t + reach + self.lookahead < self.next_correct
                or self.records[self.next_correct - 1].scene != self.records[t].scene)
            if not ready:
                break
            self._filter(t)
            self.next_out += 1
            yield from self._release(finished)
            keep_from = min(self.next_correct - self.radius, self.next_out - 1)
            for old in [i for i in self.records if i < keep_from]:
                del self.records[old]
        yield from self._release(finished)

    def _release(self, finished: bool) -> Iterator[torch.Tensor]:
        settings, strength = self.s.settings, self.s.strength
        for accumulator in self.shake.release(finished=finished and self.next_out > self.last):
            frame = spatial_fallback(normalise(accumulator), support(accumulator), decay=self.decay,
                                     sigma=settings.spatial, strength=strength)
            yield denoise_chroma(frame, settings.chroma * strength)


def smooth(frames: torch.Tensor, *, fps: str | float | Fraction = 24, **options: object) -> torch.Tensor:
    """Smooth a whole clip in memory (the functional form of :class:`Smoother`).

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        fps: the clip's frame rate (kept; smoothing does not resample).
        options: keyword options of :class:`Smoother` (``preset``, ``strength``, ``radius``, ``flow``...).

    Returns:
        ``(T, 3, H, W)`` float32 in [0, 1] on the smoother's device.

    Raises:
        InputError: frames that are not a non-empty ``(T, 3, H, W)`` tensor.
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"smooth needs a non-empty (T, 3, H, W) tensor of frames, got {shape}")
    smoother = Smoother(**options)  # type: ignore[arg-type]
    out = list(smoother.process(iter(frames), parse_fps(fps)))
    return torch.stack(out).to(smoother.device)
