"""Flow-guided blending of latents across frames, in a diffusion loop or after it.

Each frame's latent is pulled towards the previous frame's (already blended) latent, warped along the optical
flow between the two frames, wherever that flow is trustworthy:

    z'_f = z_f + s · c_f · (warp(z'_{f-1}, flow(f, f-1)) - z_f)

with ``s`` the strength and ``c_f`` in [0, 1] the share of the latent cell that the forward-backward test
(:func:`coherence.flow.ops.occlusion_mask`) does not mark occluded. It is a motion-compensated recursive filter,
the latent-space analogue of the temporal propagation in Rerender-A-Video (Yang et al. 2023, cross-frame
latent fusion) and of flow-guided attention in FLATTEN (Cong et al. 2023). Because the previous latent is
warped onto the current frame, moving content is averaged along its trajectory instead of lagging behind.

Flow is estimated on a guide: the latents themselves (their first principal component across channels, an
image whose structure follows the content; the default, measured better on the synthetic latent generator,
see ``benchmarks/latent_blending.py``), the latents decoded by a :class:`~coherence.codec.Codec`, or frames the
caller passes (the post-hoc mode uses the clip's own frames). Flow at guide resolution is resized to latent
resolution with :func:`coherence.flow.ops.resize_flow`.

Latent layouts: ``"BCFHW"`` (ModelScope/Zeroscope, AnimateDiff, Wan) and ``"BFCHW"`` (CogVideoX).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F

from coherence.clip import stack_frames
from coherence.codec import Codec
from coherence.errors import ConfigError, InputError
from coherence.flow import FlowEstimator, flow_both_ways, get_flow
from coherence.flow.ops import occlusion_mask, resize_flow, warp
from coherence.scenes import SceneCutDetector

LAYOUTS = ("BCFHW", "BFCHW")
SCHEDULES = ("constant", "linear", "cosine")
FLOW_SOURCES = ("latent", "decoded")

# Pipelines whose latents are (B, F, C, h, w); every other diffusers video pipeline we know uses (B, C, F, h, w).
_FRAMES_FIRST_PIPELINES = ("CogVideoX", "ConsisID")

# torch.quantile refuses inputs above 2**24 elements; the guide's range is estimated on a strided subsample.
_QUANTILE_SAMPLES = 1 << 20


def layout_for_pipeline(pipe: Any) -> str:
    """The latent layout of a diffusers pipeline, from its class name (``"BFCHW"`` for CogVideoX)."""
    name = type(pipe).__name__
    return "BFCHW" if name.startswith(_FRAMES_FIRST_PIPELINES) else "BCFHW"


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown latent layout {layout!r}; use one of {', '.join(LAYOUTS)}")


def to_frames_first(latents: torch.Tensor, layout: str) -> torch.Tensor:
    """View ``latents`` in ``layout`` as ``(B, F, C, h, w)`` (a permuted view, no copy)."""
    _check_layout(layout)
    if latents.ndim != 5:
        raise InputError(f"video latents must be 5-D ({layout}), got shape {tuple(latents.shape)}")
    return latents if layout == "BFCHW" else latents.permute(0, 2, 1, 3, 4)


def from_frames_first(latents: torch.Tensor, layout: str) -> torch.Tensor:
    """Inverse of :func:`to_frames_first`: ``(B, F, C, h, w)`` back to ``layout``."""
    _check_layout(layout)
    return latents if layout == "BFCHW" else latents.permute(0, 2, 1, 3, 4)


def latent_guide(latents: torch.Tensor, *, upsample: int = 4) -> torch.Tensor:
    """Images to estimate flow on, made from latents: their first principal component across channels.

    The component and its normalisation (1st and 99th percentiles mapped to 0 and 1) are shared by all frames,
    so that brightness constancy between frames, which flow estimation relies on, is kept.

    Args:
        latents: ``(F, C, h, w)`` latents of one clip.
        upsample: bilinear upsampling factor (patch-based flow needs more than a handful of pixels per object).

    Returns:
        ``(F, 3, h * upsample, w * upsample)`` float32 in [0, 1] (the component replicated in 3 channels).
    """
    frames, channels, h, w = latents.shape
    flat = latents.detach().float().permute(1, 0, 2, 3).reshape(channels, -1)
    centred = flat - flat.mean(1, keepdim=True)
    if channels > 1:
        _, vectors = torch.linalg.eigh(centred @ centred.T)
        axis = vectors[:, -1]
        axis = axis if axis.sum() >= 0 else -axis  # eigenvector sign is arbitrary; fix it for determinism
        component = axis @ centred
    else:
        component = centred[0]
    sample = component[:: max(1, component.numel() // _QUANTILE_SAMPLES)]
    lo, hi = torch.quantile(sample, torch.tensor([0.01, 0.99], device=sample.device))
    image = ((component - lo) / (hi - lo).clamp_min(1e-8)).clamp(0.0, 1.0).reshape(frames, 1, h, w)
    if upsample > 1:
        image = F.interpolate(image, scale_factor=upsample, mode="bilinear", align_corners=False)
    return image.expand(-1, 3, -1, -1).contiguous()


def guided_flows(
    guide: torch.Tensor, size: tuple[int, int], estimator: str | FlowEstimator = "dis"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows from each frame to its predecessor at latent resolution, and where they can be trusted.

    Args:
        guide: ``(F, 3, H, W)`` float32 in [0, 1], ``F >= 2``: frames (or latent images) to estimate flow on.
        size: latent ``(h, w)``.
        estimator: flow backend or its name.

    Returns:
        ``(flow, confidence)``: ``flow[f - 1] = flow(f, f - 1)``, ``(F - 1, 2, h, w)`` in latent pixels (so
        ``warp(z[f - 1], flow[f - 1])`` aligns frame ``f - 1`` onto frame ``f``), and ``confidence``
        ``(F - 1, 1, h, w)`` in [0, 1], the share of each latent cell that is not occluded.
    """
    if guide.ndim != 4 or guide.shape[1] != 3 or guide.shape[0] < 2:
        raise InputError(f"the flow guide must be (F, 3, H, W) with F >= 2, got {tuple(guide.shape)}")
    est = get_flow(estimator)
    current, previous = guide[1:].float(), guide[:-1].float()
    forward, backward = flow_both_ways(est, current, previous)
    occluded = occlusion_mask(forward, backward)
    if occluded.shape[-2] >= size[0] and occluded.shape[-1] >= size[1]:
        occluded = F.adaptive_avg_pool2d(occluded, size)
    else:
        occluded = F.interpolate(occluded, size=size, mode="bilinear", align_corners=False)
    return resize_flow(forward, size), (1.0 - occluded).clamp(0.0, 1.0)


def blend_sequence(
    latents: torch.Tensor, flow: torch.Tensor, confidence: torch.Tensor, strength: float
) -> torch.Tensor:
    """The functional core: recursive motion-compensated blending of one clip's latents.

    Args:
        latents: ``(F, C, h, w)`` float latents.
        flow: ``(F - 1, 2, h, w)``, ``flow[f - 1] = flow(f, f - 1)`` in latent pixels.
        confidence: ``(F - 1, 1, h, w)`` in [0, 1]; where it is 0 the latent is left exactly as it was.
        strength: in [0, 1]; 0 returns the latents unchanged.

    Returns:
        ``(F, C, h, w)`` float32 blended latents.
    """
    out = latents.float().clone()
    for f in range(1, out.shape[0]):
        aligned = warp(out[f - 1:f], flow[f - 1:f].float())[0]
        out[f] = out[f] + (strength * confidence[f - 1].float()) * (aligned - out[f])
    return out


def scheduled_strength(strength: float, progress: float, *, schedule: str = "cosine", stop: float = 1.0) -> float:
    """Strength at ``progress`` in [0, 1] through the denoising (0 = first step, 1 = last step).

    ``constant`` keeps ``strength``; ``linear`` falls from ``strength`` to 0; ``cosine`` falls as
    ``(1 + cos(pi p)) / 2`` (strong while the layout forms, gentle while detail is refined). Past ``stop`` the
    strength is 0, so the last steps restore detail that blending averaged away.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown strength schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    p = min(max(progress, 0.0), 1.0)
    if p > stop:
        return 0.0
    if schedule == "linear":
        return strength * (1.0 - p)
    if schedule == "cosine":
        return strength * 0.5 * (1.0 + math.cos(math.pi * p))
    return strength


class LatentBlender:
    """Flow-guided latent blending across frames, standalone or as a diffusers step callback.

    Args:
        strength: peak blending strength in [0, 1] (0 leaves latents bit-identical).
        schedule: how the strength falls over the denoising steps (see :func:`scheduled_strength`).
        stop: fraction of the denoising after which nothing is blended.
        layout: ``"BCFHW"``, ``"BFCHW"`` or ``"auto"`` (from the pipeline class in callbacks, else BCFHW).
        flow_source: ``"latent"`` (estimate flow on the latents' principal component) or ``"decoded"``
            (on frames decoded by ``codec``).
        codec: decodes ``(N, C, h, w)`` latents for ``flow_source="decoded"``.
        flow: flow backend or its name.
        upsample: upsampling of the latent guide before flow estimation.
        num_steps: number of denoising steps, for the legacy callback (else progress comes from the timestep).
        num_train_timesteps: scheduler horizon used to turn a timestep into progress.
    """

    def __init__(
        self,
        *,
        strength: float = 0.6,
        schedule: str = "cosine",
        stop: float = 1.0,
        layout: str = "auto",
        flow_source: str = "latent",
        codec: Codec | None = None,
        flow: str | FlowEstimator = "dis",
        upsample: int = 4,
        num_steps: int | None = None,
        num_train_timesteps: int = 1000,
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"latent blend strength must be in [0, 1], got {strength}")
        scheduled_strength(strength, 0.0, schedule=schedule)  # validates the name
        if layout != "auto":
            _check_layout(layout)
        if flow_source not in FLOW_SOURCES:
            raise ConfigError(f"unknown flow source {flow_source!r}; use one of {', '.join(FLOW_SOURCES)}")
        if flow_source == "decoded" and codec is None:
            raise ConfigError("flow_source='decoded' needs a codec to decode the latents")
        if upsample < 1:
            raise ConfigError(f"upsample must be at least 1, got {upsample}")
        self.strength = strength
        self.schedule = schedule
        self.stop = stop
        self.layout = layout
        self.flow_source = flow_source
        self.codec = codec
        self.flow = get_flow(flow)
        self.upsample = upsample
        self.num_steps = num_steps
        self.num_train_timesteps = num_train_timesteps

    def _guide(self, latents: torch.Tensor) -> torch.Tensor:
        if self.flow_source == "decoded":
            return self.codec.decode(latents).float().cpu()
        return latent_guide(latents, upsample=self.upsample).cpu()

    def flows(self, latents: torch.Tensor, *, guide: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Flows and confidence for one clip's ``(F, C, h, w)`` latents (see :func:`guided_flows`).

        ``guide`` ``(F, 3, H, W)`` in [0, 1] replaces the guide built from the latents (e.g. the clip's frames).
        """
        size = (latents.shape[-2], latents.shape[-1])
        guide = self._guide(latents) if guide is None else guide.float().cpu()
        flow, confidence = guided_flows(guide, size, self.flow)
        return flow.to(latents.device), confidence.to(latents.device)

    def blend(
        self,
        latents: torch.Tensor,
        *,
        strength: float | None = None,
        layout: str | None = None,
        guide: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Blend the latents of a batch of clips.

        Args:
            latents: ``(B, C, F, h, w)`` or ``(B, F, C, h, w)`` (per ``layout``), any float dtype and device.
            strength: overrides the blender's strength (no schedule applied here).
            layout: overrides the blender's layout (``"auto"`` means ``"BCFHW"`` here).
            guide: ``(B, F, 3, H, W)`` frames in [0, 1] to estimate flow on instead of the latents.

        Returns:
            A tensor of the same shape, dtype and device; ``latents`` itself when the strength is 0.
        """
        strength = self.strength if strength is None else strength
        layout = layout or self.layout
        layout = "BCFHW" if layout == "auto" else layout
        frames_first = to_frames_first(latents, layout)
        if strength <= 0.0 or frames_first.shape[1] < 2:
            return latents
        if strength > 1.0:
            raise ConfigError(f"latent blend strength must be in [0, 1], got {strength}")
        out = torch.empty(frames_first.shape, dtype=latents.dtype, device=latents.device)
        for b in range(frames_first.shape[0]):
            flow, confidence = self.flows(frames_first[b], guide=None if guide is None else guide[b])
            out[b] = blend_sequence(frames_first[b], flow, confidence, strength).to(latents.dtype)
        return from_frames_first(out, layout).contiguous()

    def strength_at(self, step: int, timestep: Any = None, num_steps: int | None = None) -> float:
        """Scheduled strength at denoising ``step`` (progress from ``num_steps`` if known, else the timestep)."""
        num_steps = num_steps or self.num_steps
        if num_steps:
            progress = step / max(num_steps - 1, 1)
        elif timestep is not None:
            progress = 1.0 - float(timestep) / self.num_train_timesteps
        else:
            raise ConfigError("the strength schedule needs num_steps or the timestep")
        return scheduled_strength(self.strength, progress, schedule=self.schedule, stop=self.stop)

    def on_step_end(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        """diffusers ``callback_on_step_end``: returns ``{"latents": blended}`` (the same tensor at strength 0)."""
        latents = callback_kwargs["latents"]
        strength = self.strength_at(step, timestep, getattr(pipe, "num_timesteps", None))
        layout = layout_for_pipeline(pipe) if self.layout == "auto" else self.layout
        return {"latents": self.blend(latents, strength=strength, layout=layout)}

    def callback(self, step: int, timestep: Any, latents: torch.Tensor) -> None:
        """The legacy diffusers ``callback(step, timestep, latents)`` (``TextToVideoSDPipeline``): in place."""
        strength = self.strength_at(step, timestep)
        blended = self.blend(latents, strength=strength)
        if blended is not latents:
            latents.copy_(blended)


class LatentBlendStage:
    """Post-hoc latent blending as a streaming stage: encode each frame, blend with the previous, decode.

    Flow comes from the frames themselves (they are finished, unlike latents mid-denoising). The stage keeps
    one frame and one latent of history and resets at scene cuts.

    Args:
        codec: frames <-> latents.
        strength: blending strength in [0, 1].
        flow: flow backend or its name.
    """

    name = "latent-blend"
    radius = 1

    def __init__(self, *, codec: Codec, strength: float = 0.6, flow: str | FlowEstimator = "dis") -> None:
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"latent blend strength must be in [0, 1], got {strength}")
        self.codec = codec
        self.strength = strength
        self.flow = get_flow(flow)

    def output_fps(self, fps: Fraction) -> Fraction:
        return fps

    def process(self, frames: Iterable[torch.Tensor], fps: Fraction) -> Iterator[torch.Tensor]:
        """``(3, H, W)`` float32 frames in [0, 1] in, the same out (through the codec)."""
        detector = SceneCutDetector()
        prev_frame: torch.Tensor | None = None
        prev_latent: torch.Tensor | None = None
        for frame in frames:
            cut = detector.update(frame)
            latent = self.codec.encode(frame[None])
            if prev_frame is not None and not cut and self.strength > 0.0:
                size = (latent.shape[-2], latent.shape[-1])
                flow, confidence = guided_flows(torch.stack((prev_frame, frame)), size, self.flow)
                pair = torch.cat((prev_latent, latent))
                latent = blend_sequence(pair, flow.to(pair.device), confidence.to(pair.device), self.strength)[1:]
            prev_frame, prev_latent = frame, latent
            yield self.codec.decode(latent)[0].to(frame.device)


def blend_clip(frames: torch.Tensor, codec: Codec, strength: float = 0.6, *,
               flow: str | FlowEstimator = "dis") -> torch.Tensor:
    """Post-hoc mode on a finished clip: encode with ``codec``, blend along the frames' flow, decode.

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        codec: frames <-> latents (e.g. :class:`~coherence.codec.VAECodec`).
        strength: in [0, 1]; 0 returns a copy of ``frames`` (no codec round trip).
        flow: flow backend or its name (flow is estimated on ``frames``).

    Returns:
        ``(T, 3, H, W)`` float32 in [0, 1]; nothing is blended across a scene cut.
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"blend_clip expects (T, 3, H, W) frames, got {tuple(frames.shape)}")
    if strength == 0.0:
        return frames.float().clone()
    stage = LatentBlendStage(codec=codec, strength=strength, flow=flow)
    return stack_frames(stage.process(iter(frames.float()), Fraction(24)))
