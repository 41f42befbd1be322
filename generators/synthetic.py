"""Synthetic clips with ground truth, and the ``synthetic`` generator.

A clip is one or more procedural scenes (:mod:`generators.scene`: textured background under a camera pan and
zoom, moving textured objects occluding each other, exact flow and occlusion) joined by hard cuts, with the
text-to-video artefacts of :mod:`generators.artifacts` applied on top. Across a cut the flow is undefined: it is
zero there, the occlusion mask is all ones and ``flow_valid`` is False. In latent mode
(:mod:`generators.synthetic_latent`) the frames are decoded from noisy per-frame latents instead.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch

from coherence.clip import Clip, parse_fps
from coherence.errors import ConfigError
from generators.artifacts import Artifacts, artifact_preset, degrade
from generators.base import GeneratedClip, GroundTruth, StepCallback, register_generator
from generators.scene import SceneRender, SyntheticScene
from generators.synthetic_latent import (
    DEFAULT_LATENT_NOISE,
    LatentCodec,
    LatentSyntheticClip,
    latent_clip,
    latents_to_frames,
)

#: Texture coarseness of the latent mode's scenes (see :func:`synthetic_latent_clip`).
LATENT_TEXTURE_SCALE = 4.0

__all__ = ["SceneRender", "SyntheticClip", "SyntheticGenerator", "SyntheticScene", "prompt_seed", "synthetic_clip",
           "synthetic_latent_clip"]

@dataclass(frozen=True, kw_only=True)
class SyntheticClip(GroundTruth):
    """A synthetic clip with its ground truth (fields of :class:`~generators.base.GroundTruth` plus these).

    Attributes:
        clean: the clean render, ``(T, 3, H, W)`` float32 in [0, 1].
        degraded: the clean render with the artefacts applied (the same frames when there are none).
        flow: true ``flow(t, t + 1)`` ``(T - 1, 2, H, W)``; zero across a cut.
        occlusion: ``(T - 1, 1, H, W)`` in {0, 1}; all ones across a cut.
        flow_valid: ``(T - 1,)`` bool, False for the pair ``(c - 1, c)`` of each cut ``c``.
        cuts: first frame of each new scene.
        layers: ``(T, H, W)`` int64 id of the visible layer (0 background, ``k`` the k-th object of its scene).
        artifacts: the artefact strengths applied, None for none.
    """

    degraded: Clip
    layers: torch.Tensor
    artifacts: Artifacts | None = None


def _artifacts(value: str | Artifacts | None) -> Artifacts | None:
    if value is None or isinstance(value, Artifacts):
        return value
    if isinstance(value, str):
        return artifact_preset(value)
    raise ConfigError(f"artifacts must be a preset name, an Artifacts or None, got {type(value).__name__}")


def _check_cuts(cuts: Sequence[int], frames: int) -> tuple[int, ...]:
    out = tuple(sorted({int(c) for c in cuts}))
    if any(c < 1 or c >= frames for c in out):
        raise ConfigError(f"scene cuts must be frame indices between 1 and {frames - 1}, got {list(cuts)}")
    return out


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2:
        raise ConfigError(f"size must be (width, height), got {size!r}")
    return int(size[0]), int(size[1])


def synthetic_clip(*, frames: int = 24, size: tuple[int, int] = (160, 96), seed: int = 0,
                   artifacts: str | Artifacts | None = "t2v", cuts: Sequence[int] = (),
                   fps: int | str | Fraction = 24, objects: int = 4, pan: float = 1.0, zoom: float = 0.004,
                   speed: float = 1.5, texture_scale: float = 1.0) -> SyntheticClip:
    """Render a procedural clip with its true flow, then apply text-to-video artefacts.

    Args:
        frames: number of frames ``T``.
        size: ``(width, height)`` in pixels.
        seed: fixes the scene and the artefacts; scene ``k`` after the ``k``-th cut is drawn from another seed.
        artifacts: an :func:`~generators.artifacts.artifact_preset` name, explicit strengths, or None (clean).
        cuts: indices of the frames that start a new scene (hard cuts).
        fps: frame rate of the clip.
        objects, pan, zoom, speed, texture_scale: scene parameters (see :class:`SyntheticScene`).

    Returns:
        The clean and degraded clips ``(T, 3, H, W)`` float32 in [0, 1] and their ground truth.

    Raises:
        ConfigError: invalid size, frame count, cut or artefact preset.
    """
    width, height = _check_size(size)
    if frames < 1:
        raise ConfigError(f"the number of frames must be at least 1, got {frames}")
    cuts = _check_cuts(cuts, frames)
    strengths = _artifacts(artifacts)
    bounds = (0, *cuts, frames)
    renders = []
    for k, (first, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        scene_seed = seed if k == 0 else (seed * 1_000_003 + k * 15_485_863) % (2**63)
        scene = SyntheticScene(width, height, seed=scene_seed, objects=objects, pan=pan, zoom=zoom, speed=speed,
                               texture_scale=texture_scale)
        renders.append(scene.render(end - first))
    flows, occlusions = [], []
    for k, render in enumerate(renders):
        if k:  # the pair straddling a cut has no correspondence: zero flow, everything occluded
            flows.append(torch.zeros(1, 2, height, width))
            occlusions.append(torch.ones(1, 1, height, width))
        flows.append(render.flow)
        occlusions.append(render.occlusion)
    valid = torch.ones(frames - 1, dtype=torch.bool)
    valid[[c - 1 for c in cuts]] = False

    clean = torch.cat([r.frames for r in renders])
    degraded = clean if strengths is None else degrade(clean, strengths, seed=seed)
    rate = parse_fps(fps)
    meta: dict[str, Any] = {"generator": "synthetic", "seed": seed, "cuts": list(cuts)}
    return SyntheticClip(
        clean=Clip(clean, rate, dict(meta)), degraded=Clip(degraded, rate, {**meta, "artifacts": strengths}),
        flow=torch.cat(flows), occlusion=torch.cat(occlusions), flow_valid=valid, cuts=cuts,
        layers=torch.cat([r.layers for r in renders]), artifacts=strengths,
    )


def synthetic_latent_clip(*, frames: int = 24, size: tuple[int, int] = (160, 96), seed: int = 0,
                          latent_noise: float = DEFAULT_LATENT_NOISE, cuts: Sequence[int] = (),
                          fps: int | str | Fraction = 24, codec: LatentCodec | None = None,
                          texture_scale: float = LATENT_TEXTURE_SCALE, **scene: float) -> LatentSyntheticClip:
    """A synthetic clip in latent mode: the clean render encoded by the fixed codec, per-frame latent noise
    added, both decoded (see :mod:`generators.synthetic_latent`).

    Args:
        frames, size, seed, cuts, fps: as :func:`synthetic_clip` (width and height must be multiples of 8).
        latent_noise: standard deviation of the per-frame latent noise.
        codec: the codec (the fixed :class:`~generators.synthetic_latent.LatentCodec` by default).
        texture_scale: coarseness of the scene's textures; 4 by default, so that latents at 1/8 of the frame size
            hold most of the detail, as a VAE's latents do (the decoded clean clip is then about 27 dB from the
            full-detail render, against about 20 dB at scale 1).
        scene: ``objects``, ``pan``, ``zoom``, ``speed`` for :class:`SyntheticScene`.

    Returns:
        Latents ``(1, 4, T, H / 8, W / 8)``, their clean version, the decoded clips and the scene's true flow.
    """
    truth = synthetic_clip(frames=frames, size=size, seed=seed, artifacts=None, cuts=cuts, fps=fps,
                           texture_scale=texture_scale, **scene)
    return latent_clip(truth, strength=latent_noise, seed=seed, codec=codec)


def prompt_seed(prompt: str, seed: int) -> int:
    """The scene seed for a prompt: ``seed`` itself for an empty prompt, else ``seed`` mixed with a stable hash of
    the prompt (CRC-32, not Python's salted ``hash``), so that different prompts give different scenes."""
    if not prompt:
        return int(seed)
    return (int(seed) + zlib.crc32(prompt.encode("utf-8")) * 2_654_435_761) % (2**63)


@register_generator("synthetic")
class SyntheticGenerator:
    """The ``synthetic`` generator: procedural clips with ground truth, no weights.

    Pixel mode (default): the clean render with pixel-space artefacts. Latent mode (``latent=True``): frames
    decoded from noisy per-frame latents, blended first when the ``latent_blend`` option (a strength in [0, 1] or a
    :class:`~coherence.latent.LatentBlender`) is given, as for the diffusers generators; step ``callbacks``
    (diffusers ``callback_on_step_end`` signature) are called once, as step 0 of 1, with
    ``{"latents": (1, 4, T, h, w)}`` and this generator as the pipeline, and the latents they return are the ones
    decoded.

    Args:
        artifacts: preset name, strengths or None; ``"auto"`` means ``"t2v"`` in pixel mode and none in latent
            mode (where the incoherence is the latent noise; pixel artefacts are not combined with it).
        latent: latent mode.
        latent_noise: per-frame latent noise (latent mode).
        cuts, fps, objects, pan, zoom, speed: as :func:`synthetic_clip`.
    """

    name = "synthetic"
    #: read by step callbacks written for diffusers pipelines: the latent mode makes one step
    num_timesteps = 1

    def __init__(self, *, artifacts: str | Artifacts | None = "auto", latent: bool = False,
                 latent_noise: float = DEFAULT_LATENT_NOISE, cuts: Sequence[int] = (),
                 fps: int | str | Fraction = 24, objects: int = 4, pan: float = 1.0, zoom: float = 0.004,
                 speed: float = 1.5) -> None:
        self.options: dict[str, Any] = {"artifacts": artifacts, "latent": latent, "latent_noise": latent_noise,
                                        "cuts": tuple(cuts), "fps": fps, "objects": objects, "pan": pan,
                                        "zoom": zoom, "speed": speed}
        self.codec = LatentCodec()

    def generate(self, prompt: str, *, frames: int = 24, size: tuple[int, int] = (160, 96), seed: int = 0,
                 callbacks: Sequence[StepCallback] | None = None, **options: Any) -> GeneratedClip:
        """Generate a clip; ``options`` override the constructor's for this call.

        Returns:
            The generated clip ``(T, 3, H, W)`` in [0, 1]; in latent mode also its latents ``(1, 4, T, h, w)``
            (layout ``"BCFHW"``) and the codec; always the ground truth (a :class:`SyntheticClip` or
            :class:`~generators.synthetic_latent.LatentSyntheticClip`).

        Raises:
            ConfigError: unknown option, callbacks in pixel mode, or pixel artefacts in latent mode.
        """
        blend = options.pop("latent_blend", None)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ConfigError(f"unknown option(s) for the synthetic generator: {', '.join(unknown)}; "
                              f"known: {', '.join(self.options)}")
        opts = {**self.options, **options}
        latent, artifacts, noise = opts.pop("latent"), opts.pop("artifacts"), opts.pop("latent_noise")
        scene_seed = prompt_seed(prompt, seed)
        meta = {"prompt": prompt, "scene_seed": scene_seed, "latent": bool(latent)}
        if not latent:
            if callbacks or blend is not None:
                raise ConfigError("step callbacks and latent blending need latents: use the synthetic generator "
                                  "with latent=True")
            truth = synthetic_clip(frames=frames, size=size, seed=scene_seed,
                                   artifacts="t2v" if artifacts == "auto" else artifacts, **opts)
            clip = Clip(truth.degraded.frames, truth.degraded.fps, {**truth.degraded.metadata, **meta})
            return GeneratedClip(clip=clip, ground_truth=truth, metadata=meta)
        if artifacts not in ("auto", None):
            raise ConfigError("the synthetic latent mode takes no pixel artefacts: its incoherence is latent_noise")
        truth = synthetic_latent_clip(frames=frames, size=size, seed=scene_seed, latent_noise=noise,
                                      codec=self.codec, **opts)
        latents = truth.latents
        if blend is not None:
            from coherence.latent import LatentBlender

            blender = blend if isinstance(blend, LatentBlender) else LatentBlender(strength=float(blend))
            callbacks = [*(callbacks or ()), blender.on_step_end]
        for step_callback in callbacks or ():
            result = step_callback(self, 0, 0, {"latents": latents})
            if isinstance(result, dict) and result.get("latents") is not None:
                latents = result["latents"]
        clip = Clip(latents_to_frames(latents, self.codec), truth.degraded.fps, {**truth.degraded.metadata, **meta})
        return GeneratedClip(clip=clip, latents=latents, latent_layout="BCFHW", codec=self.codec,
                             ground_truth=truth, metadata=meta)
