"""One streaming pass of the smoothing stage over a clip: the window of frames, what is derived from each once, and
the order in which frames are corrected, linked, filtered and released (the method is :mod:`coherence.smooth`'s)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import torch

from coherence.censoring import Censored, censored_link_weights, find_censored, own_weights
from coherence.chroma import denoise_chroma
from coherence.deflicker import (
    FITS,
    FieldFit,
    aligned_ratios,
    apply_correction,
    correction_field,
    correction_precision,
    fitted_field,
    flow_image,
    local_amplitude,
    log_thumbnail,
    refit_share,
    residual_ratios,
    resize,
    thumb_size,
    window_flows,
    window_weights,
)
from coherence.dejitter import SHAKE_SPAN, ShakeQueue
from coherence.errors import InputError
from coherence.fallback import spatial_fallback
from coherence.flow import flow_both_ways
from coherence.flow.ops import resize_flow, scaled_size
from coherence.noise import MIN_ADAPTED_SIDE, NOISE_PAIRS, adapted_decay, is_palette, link_noise, noise_scale
from coherence.scenes import SceneCutDetector
from coherence.trajectory import homogeneous, normalise, support, trajectory_offset, trajectory_step, trajectory_weights

if TYPE_CHECKING:
    from coherence.smooth import Smoother

log = logging.getLogger(__name__)

# the flow is estimated on at least this long a side (unless the frame is smaller)
_MIN_FLOW_SIDE = 160
# the anti-causal pass stops where a frame's weight falls below this share of frame t's, or after this many frames
_NEGLIGIBLE = 0.01
_MAX_LOOKAHEAD = 16
# resolution of the illumination step's flow, as a fraction of the frame size (smooth.ALIGN_DIS's patch grid at 0.4
# is finer than the 64-pixel thumbnails need; 0.5 cost 1.6 times as much for no better figures)
_ALIGN_SCALE = 0.4


@dataclass
class _Window:
    """A frame's aligned neighbours on the thumbnail grid, kept from the first fit of its correction to the last."""

    indices: list[int]  # the neighbours' frame indices
    to_s: torch.Tensor  # (K, 2, h, w) flow(t, s) for each
    ratio: torch.Tensor  # (K, 3, h, w) aligned log ratios (aligned_ratios)
    valid: torch.Tensor  # (K, 3, h, w)
    temporal: torch.Tensor  # (K,) window weights
    refit: FieldFit | None = None  # the second fit, whose weights and scale the later fits reuse


@dataclass
class _Record:
    """One frame in the window and what was derived from it once."""

    frame: torch.Tensor  # (3, H, W) input
    scene: int
    coarse: torch.Tensor  # (1, 3, h2, w2) what the illumination flow sees (flow_image at _ALIGN_SCALE)
    thumb: tuple[torch.Tensor, torch.Tensor]  # log thumbnail, per-channel usable mask
    to_next_thumb: torch.Tensor | None = None  # flow(t, t+1) on the thumbnail grid
    to_prev_thumb: torch.Tensor | None = None  # flow(t, t-1) on the thumbnail grid
    window: _Window | None = None  # its neighbours, from the first fit until the last (None: it has none)
    fits: list[torch.Tensor] = field(default_factory=list)  # (3, h, w) each fit of its log-domain correction so far
    amplitude: float = 0.0  # the first fit's local_amplitude
    corrected: torch.Tensor | None = None  # (3, H, W) after the illumination correction
    censored: Censored | None = None  # where corrected is a bound on the content, not its value
    own: torch.Tensor | None = None  # (H, W, 4) homogeneous(corrected), made once
    to_next: torch.Tensor | None = None  # (1, 2, H, W) flow(t, t+1) between corrected frames, full size
    to_prev: torch.Tensor | None = None  # (1, 2, H, W) flow(t, t-1) between corrected frames
    held: torch.Tensor | None = None  # (2, H, W, 1) where to_next's and the next frame's to_prev's trajectories hold
    weight_next: torch.Tensor | None = None  # (H, W, 1) decay where to_next passes the occlusion tests, else 0
    weight_prev: torch.Tensor | None = None  # (H, W, 1) decay where to_prev passes the occlusion tests, else 0
    link: Future[torch.Tensor] | None = None  # the trajectory flows of (t, t+1), being estimated in the background


def lookahead(decay: float) -> int:
    """Later frames the anti-causal pass of ``decay`` reads: until ``decay ** k`` falls below :data:`_NEGLIGIBLE`
    (at most :data:`_MAX_LOOKAHEAD`)."""
    if decay <= 0:
        return 0
    return min(_MAX_LOOKAHEAD, max(1, math.ceil(math.log(_NEGLIGIBLE) / math.log(decay))))


class SmoothingRun:
    """The state of one pass over one stream: the window of records and what has been emitted."""

    def __init__(self, smoother: Smoother, radius: int) -> None:
        self.s = smoother
        self.radius = radius
        # the preset's until the clip's noise is measured (_settle), before the first frame is filtered
        self.decay = smoother.decay
        self.lookahead = lookahead(self.decay)
        # the factor of the spatial filters' colour scales (the preset's until the noise is measured)
        self.noise_scale = 1.0
        self.settled = False
        self.dejitter = smoother.strength * smoother.dejitter
        self.records: dict[int, _Record] = {}
        self.detector = SceneCutDetector()
        self.last, self.next_correct, self.next_out = -1, 0, 0
        # the next frame whose fit k (0 the first) of the illumination correction is due, for each k
        self.next_fit = [0] * FITS
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
        coarse = flow_image(resize(frame[None], scaled_size(h, w, scale), mode="area"))
        return _Record(frame=frame, scene=scene, coarse=coarse, thumb=log_thumbnail(frame, thumb_size(h, w)))

    def _link_thumbs(self, a: _Record, b: _Record) -> None:
        """Both coarse flows of a consecutive pair, for the illumination step, on the thumbnail grid."""
        forward, backward = flow_both_ways(self.s.align_flow, a.coarse, b.coarse)
        size = a.thumb[0].shape[-2:]
        a.to_next_thumb = resize_flow(forward, size, align_corners=False)
        b.to_prev_thumb = resize_flow(backward, size, align_corners=False)

    def _link_frames(self, a: _Record, b: _Record) -> torch.Tensor:
        """Both trajectory flows ``(2, 2, h, w)`` of a consecutive pair of corrected frames, on the flow's grid
        (run on the flow thread: nothing else, so that it keeps pace with this one)."""
        first, second = cast(torch.Tensor, a.corrected)[None], cast(torch.Tensor, b.corrected)[None]
        h, w = first.shape[-2:]
        if self.s.flow_scale < 1.0:
            size = scaled_size(h, w, self.s.flow_scale)
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

    def _field_scale(self, record: _Record) -> float:
        return self.s.settings.field_scale * max(record.thumb[0].shape[-2:])

    def _estimate(self, t: int) -> None:
        """The first fit of frame ``t``'s correction, against its aligned neighbours as they came."""
        record = self.records[t]
        neighbours, indices = [], []
        for direction in (1, -1):
            for index, to_s, from_s in self._chain(t, self.radius, direction):
                neighbours.append((*self.records[index].thumb, to_s, from_s))
                indices.append(index)
        if neighbours:
            ratio, valid = aligned_ratios(record.thumb, neighbours)
            temporal = window_weights(torch.tensor([abs(index - t) for index in indices]), self.radius)
            record.fits.append(fitted_field(ratio, valid, sigma=self._field_scale(record), temporal=temporal).field)
            record.amplitude = local_amplitude(record.fits[0])
            record.window = _Window(indices, torch.cat([n[2] for n in neighbours]), ratio, valid, temporal)

    def _fitted(self, t: int, k: int) -> bool:
        """Whether fit ``k`` of frame ``t``'s correction and of all its neighbours' is there."""
        window = self.records[t].window
        done = self.next_fit[k]
        return t < done and (window is None or max(window.indices) < done)

    def _refit(self, t: int, k: int) -> None:
        """Fit ``k`` (``k >= 1``) of frame ``t``'s correction: the last plus a share of a fit against the neighbours'
        last corrections (:func:`~coherence.deflicker.residual_ratios`); the second finds its samples' outliers and
        scale, the later ones reuse them."""
        record = self.records[t]
        window = record.window
        if window is None:
            return
        last = record.fits[-1]
        share = refit_share([record.amplitude, *(self.records[index].amplitude for index in window.indices)], k)
        if share > 0:
            previous = torch.stack([self.records[index].fits[k - 1] for index in window.indices])
            residual = residual_ratios(window.ratio, window.to_s, previous, last)
            if window.refit is None:
                window.refit = fitted_field(residual, window.valid, sigma=self._field_scale(record),
                                            temporal=window.temporal)
                increment = window.refit.field
            else:
                increment = correction_field(residual, window.refit.weight, sigma=window.refit.sigma,
                                             temporal=window.temporal)
            last = last + share * increment
        record.fits.append(last)

    def _correct(self, t: int) -> None:
        """Frame ``t`` corrected by the last fit of its illumination correction."""
        record = self.records[t]
        size = tuple(record.frame.shape[-2:])
        weight = None  # the frame's own weights in the trajectory filter: 1 unless set below
        if record.window is None:
            record.corrected = record.frame
        else:
            correction = record.fits[-1]
            record.window = None
            record.corrected = apply_correction(record.frame, correction, strength=self.s.strength)
            weight = correction_precision(correction, size, strength=self.s.strength)
        record.censored = find_censored(record.frame, record.corrected)
        if record.censored is not None:
            censored = own_weights(record.censored, size)
            weight = censored if weight is None else censored.mul_(weight)
        record.own = homogeneous(record.corrected, weight=weight, geometry=self.dejitter > 0)
        previous = self.records.get(t - 1)
        if previous is not None and previous.scene == record.scene:
            previous.link = self.pool.submit(self._link_frames, previous, record)

    def _settle(self, finished: bool) -> bool:
        """Fix the decay and the spatial filters' colour scales to the clip's noise, measured on its first
        :data:`~coherence.noise.NOISE_PAIRS` aligned pairs (:mod:`coherence.noise`; a palette clip and a small frame
        keep the preset's); whether they are fixed (it waits for those pairs' flows)."""
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
            self.noise_scale = noise_scale(noise)
            self.settled = True
            reason = "a small frame" if small else "a palette clip" if palette else None
            log.info("smoothing: noise %s: trajectory decay %.3f, spatial colour scales x%.2f",
                     f"not measured on {reason}" if reason else "unmeasured" if noise is None else
                     f"{noise:.2f} levels", self.decay, self.noise_scale)
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
        fits = self.next_fit
        while fits[0] <= self.last and self._arrived(fits[0], self.radius, finished):
            self._estimate(fits[0])
            fits[0] += 1
        for k in range(1, FITS):
            while fits[k] < fits[k - 1] and self._fitted(fits[k], k - 1):
                self._refit(fits[k], k)
                fits[k] += 1
        while self.next_correct < fits[-1]:
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
        settings, strength, scale = self.s.settings, self.s.strength, self.noise_scale
        for accumulator in self.shake.release(finished=finished and self.next_out > self.last):
            frame = spatial_fallback(normalise(accumulator), support(accumulator), decay=self.decay,
                                     sigma=settings.spatial * scale, strength=strength)
            yield denoise_chroma(frame, settings.chroma * strength * scale)
