"""Latent mode of the synthetic generator: frames decoded from per-frame latents by a fixed linear codec, with
per-frame independent noise in latent space, so that latent blending can be measured without model weights.

The codec mimics the geometry of a Stable-Diffusion VAE as used by ModelScope/Zeroscope: 4 latent channels at 1/8
of the frame size, latents laid out ``(B, C, F, h, w)``. It is linear and fixed (no weights file, no training):
``encode`` = 8×8 area average of the frame in [-1, 1], then a 4×3 matrix with orthonormal columns (a fixed
seeded rotation of colour space into 4 channels); ``decode`` = its transpose back to colour, then bicubic ×8
upsampling. So ``decode(encode(x))`` is a low-pass copy of ``x`` and ``encode(decode(z)) ≈ z`` for smooth latents
in the codec's range; the one latent direction the decoder ignores stands for the directions a real VAE decoder
is insensitive to.

A text-to-video model denoises every frame's latent from its own noise and lands a little off the coherent
solution each time. The noise model here is that residual: each frame's latent gets an independent draw of
white noise (per latent pixel, which decodes to 8-pixel "boiling") plus a smooth field (which decodes to
regional flicker), equal in variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from coherence.clip import Clip
from coherence.errors import ConfigError, InputError
from generators.base import GroundTruth

#: Default standard deviation of the per-frame latent noise (latent values of clean frames are within about ±1).
DEFAULT_LATENT_NOISE = 0.12


class LatentCodec:
    """The fixed linear codec of the synthetic latent mode (per frame, like a VAE).

    Attributes:
        scale_factor: spatial downsampling factor (8).
        latent_channels: latent channels (4).
    """

    name = "synthetic"
    scale_factor = 8
    latent_channels = 4

    def __init__(self, *, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(self.latent_channels, self.latent_channels, generator=gen))
        self.mix = q[:, :3].contiguous()  # (4, 3), orthonormal columns: mix.T @ mix = I

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode frames.

        Args:
            frames: ``(N, 3, H, W)`` float32 in [0, 1], ``H`` and ``W`` multiples of 8.

        Returns:
            ``(N, 4, H / 8, W / 8)`` float32 latents (about ±1).
        """
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise InputError(f"the codec encodes (N, 3, H, W) frames, got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % self.scale_factor or w % self.scale_factor:
            raise InputError(f"the codec needs a frame size divisible by {self.scale_factor}, got {w}x{h}")
        pooled = F.avg_pool2d(frames.float() * 2.0 - 1.0, self.scale_factor)
        return torch.einsum("cd,ndhw->nchw", self.mix, pooled)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode latents.

        Args:
            latents: ``(N, 4, h, w)`` float.

        Returns:
            ``(N, 3, 8 h, 8 w)`` float32 in [0, 1].
        """
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise InputError(f"the codec decodes (N, {self.latent_channels}, h, w) latents, got "
                             f"{tuple(latents.shape)}")
        rgb = torch.einsum("cd,nchw->ndhw", self.mix, latents.float())
        up = F.interpolate(rgb, scale_factor=self.scale_factor, mode="bicubic", align_corners=False)
        return ((up + 1.0) * 0.5).clamp(0.0, 1.0)


def frames_to_latents(frames: torch.Tensor, codec: LatentCodec) -> torch.Tensor:
    """Encode a clip ``(T, 3, H, W)`` in [0, 1] into ModelScope-layout latents ``(1, 4, T, H / 8, W / 8)``."""
    return codec.encode(frames).transpose(0, 1)[None]


def latents_to_frames(latents: torch.Tensor, codec: LatentCodec) -> torch.Tensor:
    """Decode ModelScope-layout latents ``(1, 4, T, h, w)`` into a clip ``(T, 3, 8 h, 8 w)`` in [0, 1]."""
    if latents.ndim != 5 or latents.shape[0] != 1:
        raise InputError(f"expected latents of shape (1, C, F, h, w), got {tuple(latents.shape)}")
    return codec.decode(latents[0].transpose(0, 1))


def latent_noise(shape: tuple[int, int, int], strength: float, *, seed: int, index: int) -> torch.Tensor:
    """The latent noise of frame ``index``: independent per frame, drawn from ``(seed, index)``.

    Args:
        shape: ``(C, h, w)`` of one frame's latent.
        strength: standard deviation per latent value; half the variance white, half a smooth field on a grid
            of about a quarter of the latent size, bicubically upsampled.

    Returns:
        ``(C, h, w)`` float32.
    """
    gen = torch.Generator().manual_seed((seed * 1_000_003 + index * 7919 + 104_729) % (2**63))
    c, h, w = shape
    white = torch.randn(c, h, w, generator=gen)
    grid = (max(2, h // 4), max(2, w // 4))
    smooth = F.interpolate(torch.randn(1, c, *grid, generator=gen), size=(h, w), mode="bicubic",
                           align_corners=True)[0]
    smooth = smooth / smooth.std().clamp_min(1e-6)
    return strength * (white + smooth) / math.sqrt(2.0)


@dataclass(frozen=True, kw_only=True)
class LatentSyntheticClip(GroundTruth):
    """A synthetic clip in latent mode (ground truth fields from :class:`~generators.base.GroundTruth`).

    Attributes:
        clean: ``decode(clean_latents)``: what a perfectly coherent model would output, ``(T, 3, H, W)`` in [0, 1].
        degraded: ``decode(latents)``, the incoherent clip, ``(T, 3, H, W)`` in [0, 1].
        scene: the full-detail rendered scene the clean latents encode, ``(T, 3, H, W)`` in [0, 1].
        latents: noisy latents ``(1, 4, T, H / 8, W / 8)`` (ModelScope layout ``(B, C, F, h, w)``).
        clean_latents: ``encode(scene)``, same shape.
        codec: the :class:`LatentCodec` that decodes them.
        flow, occlusion, flow_valid, cuts: the scene's true flow at full resolution (see ``GroundTruth``).
    """

    degraded: Clip
    scene: Clip
    latents: torch.Tensor
    clean_latents: torch.Tensor
    codec: LatentCodec


def latent_clip(truth: GroundTruth, *, strength: float = DEFAULT_LATENT_NOISE, seed: int = 0,
                codec: LatentCodec | None = None) -> LatentSyntheticClip:
    """Turn a rendered clean clip into its latent-mode version.

    Args:
        truth: the clean scene and its true flow (a :class:`~generators.synthetic.SyntheticClip` works).
        strength: standard deviation of the per-frame latent noise (0 gives a coherent clip).
        seed: seed of the noise.
        codec: the codec; the fixed :class:`LatentCodec` by default.

    Raises:
        ConfigError: negative strength or a frame size not divisible by 8.
    """
    if strength < 0:
        raise ConfigError(f"the latent noise must be 0 or more, got {strength}")
    codec = codec or LatentCodec()
    scene = truth.clean
    width, height = scene.size
    if width % codec.scale_factor or height % codec.scale_factor:
        raise ConfigError(f"latent mode needs a frame size divisible by {codec.scale_factor}, got {width}x{height}")
    clean_latents = frames_to_latents(scene.frames, codec)
    noise = torch.stack([latent_noise(tuple(clean_latents.shape[i] for i in (1, 3, 4)), strength, seed=seed,
                                      index=t) for t in range(clean_latents.shape[2])], dim=1)[None]
    latents = clean_latents + noise
    meta = {**scene.metadata, "latent_noise": strength}
    return LatentSyntheticClip(
        clean=Clip(latents_to_frames(clean_latents, codec), scene.fps, dict(meta)),
        degraded=Clip(latents_to_frames(latents, codec), scene.fps, dict(meta)),
        scene=scene, latents=latents, clean_latents=clean_latents, codec=codec,
        flow=truth.flow, occlusion=truth.occlusion, flow_valid=truth.flow_valid, cuts=truth.cuts,
    )
