"""Flow-guided temporal smoothing: deflicker, then denoise against aligned neighbours, streaming.

For each frame ``t`` (all inside its scene; nothing crosses a cut):

1. **Flow, once per consecutive pair**, forward and backward, at half resolution (DIS by default). Every other
   flow is a composition of these, at the resolution where it is used.
2. **Illumination and colour** (:mod:`coherence.deflicker`): on ~64-pixel log thumbnails, the frame is compared
   with its neighbours ``t - radius .. t + radius`` aligned by composed flows; the occlusion- and
   outlier-weighted mean log ratio, smoothed spatially, is the correction. Its error shrinks like
   ``1 / sqrt(2 * radius + 1)`` and it needs no model of the flicker beyond "multiplicative and smooth".
3. **Texture** (noise, boiling): the corrected neighbours ``t ± 1 .. t ± neighbours`` are warped onto
   ``t`` at full resolution and averaged with ``t`` under per-pixel weights that vanish where the flow is
   occluded (forward-backward and motion-boundary tests) or where the aligned neighbour differs from ``t``
   by more than the clip's own noise floor (a temporal bilateral weight, as in the patch weights of
   non-local means, Buades et al. 2005, and the guided window blending of FastBlend, Duan et al. 2023).

Frame ``t`` always carries weight 1 and neighbours are aligned onto it, so motion is neither lagged nor
averaged away, and a still clip stays as sharp as it was. The flip side: frame ``t``'s own geometry is kept, so
a global sub-pixel jitter is not undone (only its texture noise is averaged). Memory holds
``radius + neighbours`` frames ahead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
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
    log_thumbnail,
    resize,
    thumb_size,
    window_flows,
)
from coherence.errors import ConfigError, InputError
from coherence.flow import FlowEstimator, get_flow
from coherence.flow.ops import occlusion_mask, warp
from coherence.scenes import SceneCutDetector

log = logging.getLogger(__name__)

# bounds of the difference scale of the temporal weights (in [0, 1] units): 1 and 20 levels of 8 bits
_MIN_SCALE, _MAX_SCALE = 1.0 / 255, 20.0 / 255
# the flow is estimated on at least this long a side (unless the frame is smaller)
_MIN_FLOW_SIDE = 160

_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def scale_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a ``(N, 2, h, w)`` flow onto a ``size = (H, W)`` grid and rescale its vectors.

    Pixel centres follow the area down-sampling that made the grids (``align_corners=False``); shrinking
    averages the vectors (area), growing interpolates them (bilinear).
    """
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    out = resize(flow, size, mode="area" if size[0] <= h and size[1] <= w else "bilinear")
    factor = torch.tensor([size[1] / w, size[0] / h], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
    return out * factor


def warp_full(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp a full-resolution frame by a lower-resolution flow (the :func:`coherence.flow.ops.warp` convention).

    On the CPU, OpenCV's ``remap`` does the sampling (about four times faster than ``grid_sample`` there);
    elsewhere ``grid_sample`` does.

    Args:
        image: ``(3, H, W)`` float32.
        flow: ``(1, 2, h, w)`` flow in pixels of its own grid.

    Returns:
        ``(3, H, W)`` float32, ``image`` sampled at ``p + flow(p)`` with border replication.
    """
    h, w = image.shape[-2:]
    full = scale_flow(flow, (h, w))
    if image.device.type != "cpu":
        return warp(image[None], full)[0]
    grid = _GRIDS.get((h, w))
    if grid is None:
        grid = tuple(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
        _GRIDS.clear()
        _GRIDS[(h, w)] = grid
    flow_np = full[0].numpy()
    map_x, map_y = grid[0] + flow_np[0], grid[1] + flow_np[1]
    planes = image.contiguous().numpy()
    out = np.empty_like(planes)
    for c in range(planes.shape[0]):
        cv2.remap(planes[c], map_x, map_y, cv2.INTER_LINEAR, dst=out[c], borderMode=cv2.BORDER_REPLICATE)
    return torch.from_numpy(out)


def fuse(frame: torch.Tensor, warped: torch.Tensor, valid: torch.Tensor, *, spread: float,
         strength: float = 1.0) -> torch.Tensor:
    """Average a frame with its aligned neighbours under occlusion- and difference-aware weights.

    A neighbour's weight at ``p`` is ``valid(p) * exp(-(d(p) / h)²)`` where ``d`` is the channel-mean absolute
    difference to the frame, averaged over the cells of ``valid``'s grid, and ``h = spread * median(d)``
    over the valid cells: the median measures the clip's own noise floor, so the same setting serves clean and
    noisy clips. The frame itself has weight 1.

    Args:
        frame: ``(3, H, W)`` float32 in [0, 1].
        warped: ``(K, 3, H, W)`` neighbours aligned onto ``frame``.
        valid: ``(K, 1, h, w)`` float mask (1 = the alignment can be trusted), on a coarser grid.
        spread: multiple of the noise floor at which a weight falls to ``1/e``.
        strength: scales every neighbour weight (0 returns ``frame``).

    Returns:
        ``(3, H, W)`` float32 in [0, 1].
    """
    diff = (warped - frame[None]).abs_().mean(1, keepdim=True)
    diff = resize(diff, tuple(valid.shape[-2:]), mode="area")
    inside = valid > 0.5
    floor = diff[inside].median() if bool(inside.any()) else diff.median()
    scale = (spread * floor).clamp(_MIN_SCALE, _MAX_SCALE)
    weight = valid * torch.exp(-(diff / scale).square()) * strength
    weight = resize(weight, tuple(frame.shape[-2:]), mode="bilinear")
    total = (warped * weight).sum(0).add_(frame)
    return total.div_(weight.sum(0).add_(1.0)).clamp_(0.0, 1.0)


@dataclass(frozen=True)
class SmoothSettings:
    """What a preset fixes.

    Attributes:
        radius: illumination window: neighbours on each side compared with the frame on thumbnails.
        neighbours: texture window: neighbours on each side averaged at full resolution.
        field_scale: spatial scale of the illumination correction, as a fraction of the frame's long side.
        spread: how far above the clip's noise floor an aligned neighbour may differ and still be averaged.
    """

    radius: int
    neighbours: int
    field_scale: float
    spread: float


SMOOTH_PRESETS: dict[str, SmoothSettings] = {
    "light": SmoothSettings(radius=6, neighbours=1, field_scale=0.06, spread=1.5),
    "default": SmoothSettings(radius=12, neighbours=1, field_scale=0.05, spread=2.0),
    "strong": SmoothSettings(radius=16, neighbours=2, field_scale=0.05, spread=2.5),
}


@dataclass
class _Record:
    """One frame in the window and what was derived from it once."""

    frame: torch.Tensor  # (3, H, W) input
    scene: int
    half: torch.Tensor  # (1, 3, h2, w2) flow resolution
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
        flow: flow backend name or instance (default DIS ``ultrafast``).
        flow_weights: local weights file for a backend that needs weights (RAFT).
        flow_scale: resolution of the flow estimate, as a fraction of the frame size.
        device: torch device for the computation (``"cpu"``, ``"cuda"``); outputs come back on it.
    """

    name = "smooth"

    def __init__(self, *, preset: str = "default", strength: float = 1.0, radius: int | None = None,
                 neighbours: int | None = None, flow: str | FlowEstimator = "dis",
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
            field_scale=settings.field_scale, spread=settings.spread)
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
        half = resize(frame[None], half_size, mode="area")
        return _Record(frame=frame, scene=scene, half=half, thumb=log_thumbnail(frame, thumb_size(h, w)))

    def _link(self, a: _Record, b: _Record) -> None:
        """Estimate both flows of a consecutive pair in one batch."""
        flows = self.s.flow(torch.cat([a.half, b.half]), torch.cat([b.half, a.half]))
        a.to_next, b.to_prev = flows[:1], flows[1:]
        size = a.thumb[0].shape[-2:]
        a.to_next_thumb, b.to_prev_thumb = scale_flow(a.to_next, size), scale_flow(b.to_prev, size)

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
        base = cast(torch.Tensor, record.corrected)
        warped, valid = [], []
        for direction in (1, -1):
            for s, to_s, from_s in self._chain(t, self.s.settings.neighbours, direction, thumb=False):
                warped.append(warp_full(cast(torch.Tensor, self.records[s].corrected), to_s))
                valid.append(1.0 - occlusion_mask(to_s, from_s))
        if not warped:
            return base
        return fuse(base, torch.stack(warped), torch.cat(valid), spread=self.s.settings.spread,
                    strength=self.s.strength)

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
            keep_from = min(self.next_correct - settings.radius, self.next_out - settings.neighbours)
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
