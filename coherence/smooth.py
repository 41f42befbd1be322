"""Flow-guided temporal smoothing: deflicker, then denoise against aligned neighbours, streaming.

For each frame ``t`` (all inside its scene; nothing crosses a cut):

1. **Flow, once per consecutive pair**, forward and backward, at half resolution (DIS by default), on frames
   divided by their own local mean (:func:`flow_image`) so that the flicker does not break brightness constancy.
   Every other flow is a composition of these, at the resolution where it is used.
2. **Illumination and colour** (:mod:`coherence.deflicker`): on ~64-pixel log thumbnails, the frame is compared
   with its neighbours ``t - radius .. t + radius`` aligned by composed flows; the occlusion- and
   outlier-weighted mean log ratio, smoothed spatially, is the correction. Its error shrinks like
   ``1 / sqrt(2 * radius + 1)`` and it needs no model of the flicker beyond "multiplicative and smooth".
3. **Texture** (noise, boiling): the corrected neighbours ``t ± 1 .. t ± neighbours`` are warped onto
   ``t`` at full resolution and averaged with ``t`` under per-pixel weights that vanish where the flow is
   occluded (forward-backward and motion-boundary tests) or where the aligned neighbour differs from ``t``
   by more than the clip's own noise floor (a temporal bilateral weight, as in the patch weights of
   non-local means, Buades et al. 2005, and the guided window blending of FastBlend, Duan et al. 2023).
4. **Recursion** (:func:`accumulate`): the previous output, warped onto ``t``, is blended into that average
   with the same occlusion and (tighter) difference gate, weighted by how many frames it already stands for,
   up to ``memory``: on static and consistently tracked regions the temporal support grows from the window's
   three frames to about ``memory``, which is what brings the warping error down; where the gate closes (a
   moving object uncovered, a flow error) it restarts from the window.

Frame ``t`` always carries weight 1, neighbours and the previous output are aligned onto it, and whatever
differs from it by more than the noise is not averaged in, so motion is neither lagged nor averaged away, and
a still clip stays as sharp as it was. The flip side: frame ``t``'s own geometry is kept, so a global sub-pixel
jitter is not undone (only its texture noise is averaged). Memory holds ``radius + neighbours`` frames ahead
and one output behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import torch

from coherence.clip import parse_fps
from coherence.deflicker import (
    aligned_ratios,
    apply_correction,
    correction_field,
    flow_image,
    log_thumbnail,
    resize,
    thumb_size,
    warp_full,
    window_flows,
)
from coherence.errors import ConfigError, InputError
from coherence.flow import FlowEstimator, get_flow
from coherence.flow.ops import occlusion_mask, resize_flow, warp
from coherence.scenes import SceneCutDetector

log = logging.getLogger(__name__)

# bounds of the difference scale of the temporal weights (in [0, 1] units): 1 and 20 levels of 8 bits
_MIN_SCALE, _MAX_SCALE = 1.0 / 255, 20.0 / 255
# the flow is estimated on at least this long a side (unless the frame is smaller)
_MIN_FLOW_SIDE = 160

# the recursive step's difference gate, relative to the window's: the aligned previous output may weigh up to
# `memory` frames where a window neighbour weighs one, so an alignment error that slips through costs more
_RECURSIVE_SPREAD = 0.75

def _mean_abs_diff(frame: torch.Tensor, warped: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Channel-mean absolute difference of each of ``K`` ``(3, H, W)`` images to the ``(3, H, W)`` frame,
    area-averaged onto ``size``: ``(K, 1, h, w)``. OpenCV's ``absdiff`` on the CPU (the full-size pass is the
    costly part)."""
    if frame.device.type != "cpu":
        return resize((torch.stack(list(warped)) - frame[None]).abs_().mean(1, keepdim=True), size, mode="area")
    planes = frame.contiguous().numpy()
    out = np.empty((len(warped), 1, *size), dtype=np.float32)
    total, part = np.empty_like(planes[0]), np.empty_like(planes[0])
    for k, image in enumerate(warped):
        channels = image.contiguous().numpy()
        cv2.absdiff(channels[0], planes[0], dst=total)
        for c in range(1, planes.shape[0]):
            cv2.add(total, cv2.absdiff(channels[c], planes[c], dst=part), dst=total)
        cv2.resize(total, (size[1], size[0]), dst=out[k, 0], interpolation=cv2.INTER_AREA)
    return torch.from_numpy(out).div_(planes.shape[0])


def _bilateral(frame: torch.Tensor, warped: Sequence[torch.Tensor], valid: torch.Tensor, spread: float) -> torch.Tensor:
    """``valid * exp(-(d / h)²)`` on ``valid``'s grid; ``d`` is the area-averaged channel-mean absolute difference
    of each of ``K`` ``(3, H, W)`` aligned images to the ``(3, H, W)`` frame and ``h = spread * median(d)`` over the
    valid cells (the clip's own noise floor), bounded to 1..20 levels of 8 bits."""
    diff = _mean_abs_diff(frame, warped, tuple(valid.shape[-2:]))
    inside = valid > 0.5
    floor = diff[inside].median() if bool(inside.any()) else diff.median()
    scale = (spread * floor).clamp(_MIN_SCALE, _MAX_SCALE)
    return valid * torch.exp(-(diff / scale).square())


def fuse(frame: torch.Tensor, warped: Sequence[torch.Tensor], valid: torch.Tensor, *, spread: float,
         strength: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Average a frame with its aligned neighbours under occlusion- and difference-aware weights.

    A neighbour's weight at ``p`` is ``valid(p) * exp(-(d(p) / h)²)`` where ``d`` is the channel-mean absolute
    difference to the frame, averaged over the cells of ``valid``'s grid, and ``h = spread * median(d)``
    over the valid cells: the median measures the clip's own noise floor, so the same setting serves clean and
    noisy clips. The frame itself has weight 1.

    Args:
        frame: ``(3, H, W)`` float32 in [0, 1].
        warped: ``K`` ``(3, H, W)`` neighbours aligned onto ``frame`` (a list or a ``(K, 3, H, W)`` tensor).
        valid: ``(K, 1, h, w)`` float mask (1 = the alignment can be trusted), on a coarser grid.
        spread: multiple of the noise floor at which a weight falls to ``1/e``.
        strength: scales every neighbour weight (0 returns ``frame``).

    Returns:
        ``(out, support)``: ``(3, H, W)`` float32 in [0, 1], and the ``(1, h, w)`` sum of the weights (frame
        included) on ``valid``'s grid, the number of frames ``out`` effectively averages.
    """
    weight = _bilateral(frame, warped, valid, spread) * strength
    full = resize(weight, tuple(frame.shape[-2:]), mode="bilinear")
    total, norm = frame.clone(), full.sum(0).add_(1.0)
    for image, w in zip(warped, full, strict=True):
        total.addcmul_(image, w)
    return total.div_(norm).clamp_(0.0, 1.0), weight.sum(0).add_(1.0)


def accumulate(current: torch.Tensor, support: torch.Tensor, previous: torch.Tensor, prior: torch.Tensor,
               valid: torch.Tensor, *, spread: float, cap: float,
               strength: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend the previous output, aligned onto frame ``t``, into frame ``t``'s windowed average (recursive step).

    A per-pixel Kalman-style running mean: the aligned previous output counts as ``min(prior, cap)`` frames
    times the same occlusion and temporal-bilateral weight as :func:`fuse` (so it vanishes where the flow is
    occluded or the aligned output differs from ``current`` by more than the noise floor: nothing trails behind
    a moving object), and the window's average counts as ``support`` frames. On static and consistently moving
    regions the effective support grows to ``cap`` frames instead of the window's few, as in recursive
    motion-compensated video denoising (Dubois and Sabri 1984; the warped previous output of Bonneel et al.
    2015 and Lai et al. 2018), while the cap keeps a bounded memory so a slow change is followed.

    Args:
        current: ``(3, H, W)`` float32 in [0, 1], frame ``t``'s windowed average.
        support: ``(1, h, w)`` frames averaged in ``current``.
        previous: ``(3, H, W)`` previous output aligned onto frame ``t``.
        prior: ``(1, h, w)`` the previous output's support aligned onto frame ``t``.
        valid: ``(1, 1, h, w)`` float mask (1 = the alignment can be trusted).
        spread: multiple of the noise floor at which the weight falls to ``1/e``.
        cap: largest support the previous output may carry.
        strength: scales the previous output's weight (0 returns ``current``).

    Returns:
        ``(out, support)``: ``(3, H, W)`` float32 in [0, 1] and its ``(1, h, w)`` support.
    """
    weight = _bilateral(current, [previous], valid, spread)[0] * prior.clamp(max=cap) * strength
    size = tuple(current.shape[-2:])
    mix = resize((weight / (weight + support))[None], size, mode="bilinear")[0]
    out = current + (previous - current).mul_(mix)
    return out.clamp_(0.0, 1.0), support + weight


@dataclass(frozen=True)
class SmoothSettings:
    """What a preset fixes.

    Attributes:
        radius: illumination window: neighbours on each side compared with the frame on thumbnails.
        neighbours: texture window: neighbours on each side averaged at full resolution.
        field_scale: spatial scale of the illumination correction, as a fraction of the frame's long side.
        spread: how far above the clip's noise floor an aligned neighbour may differ and still be averaged.
        memory: most frames the aligned previous output may stand for (0 turns the recursion off).
    """

    radius: int
    neighbours: int
    field_scale: float
    spread: float
    memory: float


SMOOTH_PRESETS: dict[str, SmoothSettings] = {
    "light": SmoothSettings(radius=6, neighbours=1, field_scale=0.06, spread=1.5, memory=3.0),
    "default": SmoothSettings(radius=12, neighbours=1, field_scale=0.05, spread=2.0, memory=5.0),
    "strong": SmoothSettings(radius=16, neighbours=2, field_scale=0.05, spread=2.5, memory=8.0),
}


@dataclass
class _Record:
    """One frame in the window and what was derived from it once."""

    frame: torch.Tensor  # (3, H, W) input
    scene: int
    half: torch.Tensor  # (1, 3, h2, w2) what the flow sees (flow_image), flow resolution
    thumb: tuple[torch.Tensor, torch.Tensor]  # log thumbnail, usable mask
    to_next: torch.Tensor | None = None  # flow(t, t+1), half resolution
    to_prev: torch.Tensor | None = None  # flow(t, t-1), half resolution
    to_next_thumb: torch.Tensor | None = None
    to_prev_thumb: torch.Tensor | None = None
    corrected: torch.Tensor | None = None  # (3, H, W) after the illumination correction


class Smoother:
    """The smoothing stage (see the module docstring); implements :class:`coherence.stage.Stage`.

    Args:
        preset: a key of :data:`SMOOTH_PRESETS`.
        strength: 0..1, how much of the correction and of the averaging is applied (0 returns the input).
        radius: override the preset's illumination window (frames on each side).
        neighbours: override the preset's texture window (frames on each side, 0 turns it off).
        memory: override the preset's cap on the frames the recursive step carries (0 turns it off).
        flow: flow backend name or instance (default DIS ``ultrafast``).
        flow_weights: local weights file for a backend that needs weights (RAFT).
        flow_scale: resolution of the flow estimate, as a fraction of the frame size.
        device: torch device for the computation (``"cpu"``, ``"cuda"``); outputs come back on it.
    """

    name = "smooth"

    def __init__(self, *, preset: str = "default", strength: float = 1.0, radius: int | None = None,
                 neighbours: int | None = None, memory: float | None = None, flow: str | FlowEstimator = "dis",
                 flow_weights: str | Path | None = None, flow_scale: float = 0.5,
                 device: str | torch.device = "cpu") -> None:
        if preset not in SMOOTH_PRESETS:
            raise ConfigError(f"unknown smoothing preset {preset!r}; choose one of {', '.join(SMOOTH_PRESETS)}")
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must be between 0 and 1, got {strength}")
        settings = SMOOTH_PRESETS[preset]
        self.settings = SmoothSettings(
            radius=settings.radius if radius is None else radius,
            neighbours=settings.neighbours if neighbours is None else neighbours,
            field_scale=settings.field_scale, spread=settings.spread,
            memory=settings.memory if memory is None else memory)
        if not 0.0 <= self.settings.memory <= 64.0:
            raise ConfigError(f"memory must be in 0..64 frames, got {self.settings.memory}")
        if not 0 <= self.settings.radius <= 64 or not 0 <= self.settings.neighbours <= 4:
            raise ConfigError(f"radius must be in 0..64 and neighbours in 0..4, got {self.settings.radius} and "
                              f"{self.settings.neighbours}")
        if not 0.1 <= flow_scale <= 1.0:
            raise ConfigError(f"flow scale must be in [0.1, 1], got {flow_scale}")
        self.strength = strength
        self.flow_scale = flow_scale
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"unknown device {device!r}") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
        if isinstance(flow, str):
            options: dict[str, object] = {"device": self.device}
            if flow == "dis":
                options["preset"] = "ultrafast"
            if flow_weights is not None:
                if not flow.startswith("raft"):
                    raise ConfigError(f"flow weights apply to the RAFT backends, not to {flow!r}")
                options["weights_path"] = flow_weights
            self.flow = get_flow(flow, **options)
        else:
            self.flow = flow
        self.radius = self.settings.radius + self.settings.neighbours

    def output_fps(self, fps: Fraction) -> Fraction:
        """Smoothing keeps the frame rate."""
        return fps

    def process(self, frames: Iterable[torch.Tensor], fps: Fraction) -> Iterator[torch.Tensor]:
        """Smooth a stream of ``(3, H, W)`` float32 frames in [0, 1]; yields as many frames, same size.

        Frames are yielded ``radius + neighbours`` frames after they arrive (sooner at a cut or at the end).

        Raises:
            InputError: a frame that is not ``(3, H, W)`` or whose size differs from the first.
        """
        if self.strength == 0.0:
            yield from frames
            return
        yield from _Run(self).process(frames)


class _Run:
    """The state of one pass over one stream: the window of records and what has been emitted."""

    def __init__(self, smoother: Smoother) -> None:
        self.s = smoother
        self.records: dict[int, _Record] = {}
        self.detector = SceneCutDetector()
        self.last = -1
        self.next_correct = 0
        self.next_out = 0
        self.size: tuple[int, int] | None = None
        # the last output, its support and its index, for the recursive step
        self.previous: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def process(self, frames: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
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
                self._link(previous, record)
            yield from self._drain(finished=False)
        yield from self._drain(finished=True)

    # -- per frame ---------------------------------------------------------------------------------------
    def _check(self, frame: torch.Tensor) -> torch.Tensor:
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise InputError(f"smoothing needs (3, H, W) frames, got {tuple(frame.shape)}")
        size = (frame.shape[1], frame.shape[2])
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise InputError(f"frame {self.last + 1} is {size[1]}x{size[0]} but the clip is "
                             f"{self.size[1]}x{self.size[0]}")
        return frame.to(self.s.device, torch.float32)

    def _record(self, frame: torch.Tensor, scene: int) -> _Record:
        h, w = frame.shape[-2:]
        # small frames keep enough pixels for the flow to resolve their motion
        scale = max(self.s.flow_scale, min(1.0, _MIN_FLOW_SIDE / max(h, w)))
        half_size = (max(8, round(h * scale)), max(8, round(w * scale)))
        half = flow_image(resize(frame[None], half_size, mode="area"))
        return _Record(frame=frame, scene=scene, half=half, thumb=log_thumbnail(frame, thumb_size(h, w)))

    def _link(self, a: _Record, b: _Record) -> None:
        """Estimate both flows of a consecutive pair in one batch."""
        flows = self.s.flow(torch.cat([a.half, b.half]), torch.cat([b.half, a.half]))
        a.to_next, b.to_prev = flows[:1], flows[1:]
        size = a.thumb[0].shape[-2:]
        a.to_next_thumb, b.to_prev_thumb = (resize_flow(a.to_next, size, align_corners=False),
                                                   resize_flow(b.to_prev, size, align_corners=False))

    def _sigma(self, record: _Record) -> float:
        return self.s.settings.field_scale * max(record.thumb[0].shape[-2:])

    # -- windows -----------------------------------------------------------------------------------------
    def _chain(self, t: int, reach: int, direction: int, *,
               thumb: bool) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """Flows between ``t`` and each neighbour ``t + direction * j`` (``j = 1..reach``) in ``t``'s scene."""
        forward, backward, indices = [], [], []
        for j in range(1, reach + 1):
            near, far = self.records.get(t + direction * (j - 1)), self.records.get(t + direction * j)
            if near is None or far is None or far.scene != near.scene:
                break
            if direction > 0:
                f, b = (near.to_next_thumb, far.to_prev_thumb) if thumb else (near.to_next, far.to_prev)
            else:
                f, b = (near.to_prev_thumb, far.to_next_thumb) if thumb else (near.to_prev, far.to_next)
            forward.append(f)
            backward.append(b)
            indices.append(t + direction * j)
        return [(s, to_s, from_s) for s, (to_s, from_s) in zip(indices, window_flows(forward, backward), strict=True)]

    def _arrived(self, t: int, reach: int, finished: bool) -> bool:
        """Whether every frame of ``t``'s scene up to ``t + reach`` has arrived."""
        return finished or self.last >= t + reach or self.records[self.last].scene != self.records[t].scene

    def _correct(self, t: int) -> None:
        record = self.records[t]
        neighbours = []
        for direction in (1, -1):
            for index, to_s, from_s in self._chain(t, self.s.settings.radius, direction, thumb=True):
                neighbours.append((*self.records[index].thumb, to_s, from_s))
        if not neighbours:
            record.corrected = record.frame
            return
        ratio, weight = aligned_ratios(record.thumb, neighbours, sigma=self._sigma(record))
        field = correction_field(ratio, weight, sigma=self._sigma(record))
        record.corrected = apply_correction(record.frame, field, strength=self.s.strength)

    def _output(self, t: int) -> torch.Tensor:
        record = self.records[t]
        settings = self.s.settings
        base = cast(torch.Tensor, record.corrected)
        warped, valid = [], []
        to_prev_valid = None
        for direction in (1, -1):
            for s, to_s, from_s in self._chain(t, settings.neighbours, direction, thumb=False):
                warped.append(warp_full(cast(torch.Tensor, self.records[s].corrected), to_s))
                valid.append(1.0 - occlusion_mask(to_s, from_s))
                if s == t - 1:
                    to_prev_valid = valid[-1]
        if warped:
            out, support = fuse(base, warped, torch.cat(valid), spread=settings.spread,
                                strength=self.s.strength)
        else:
            grid = record.half.shape[-2:] if record.to_prev is None else record.to_prev.shape[-2:]
            out, support = base, torch.ones(1, *grid, dtype=base.dtype, device=base.device)
        previous, self.previous = self.previous, None
        prev_record = self.records.get(t - 1)
        if (settings.memory > 0 and previous is not None and previous[0] == t - 1 and record.to_prev is not None
                and prev_record is not None and prev_record.to_next is not None):
            if to_prev_valid is None:
                to_prev_valid = 1.0 - occlusion_mask(record.to_prev, prev_record.to_next)
            # bicubic: the previous output is resampled again every frame, bilinear would blur it cumulatively
            aligned = warp_full(previous[1], record.to_prev, cubic=True)
            prior = warp(previous[2][None], record.to_prev)[0]
            out, support = accumulate(out, support, aligned, prior, to_prev_valid, cap=settings.memory,
                                      spread=settings.spread * _RECURSIVE_SPREAD, strength=self.s.strength)
        self.previous = (t, out, support)
        return out

    def _drain(self, *, finished: bool) -> Iterator[torch.Tensor]:
        settings = self.s.settings
        while self.next_correct <= self.last and self._arrived(self.next_correct, settings.radius, finished):
            self._correct(self.next_correct)
            self.next_correct += 1
        while self.next_out < self.next_correct:
            t = self.next_out
            needed = [s for s, _, _ in self._chain(t, settings.neighbours, 1, thumb=False)]
            if not self._arrived(t, settings.neighbours, finished) or any(s >= self.next_correct for s in needed):
                break
            yield self._output(t)
            self.next_out += 1
            keep_from = min(self.next_correct - settings.radius, self.next_out - max(1, settings.neighbours))
            for old in [i for i in self.records if i < keep_from]:
                del self.records[old]


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
