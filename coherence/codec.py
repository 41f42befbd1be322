"""The ``Codec`` protocol (frames <-> latents) and its implementations: identity and diffusers VAEs.

A codec maps a clip of frames ``(T, 3, H, W)`` float32 in [0, 1] to per-frame latents ``(T, C, h, w)`` and
back. Latent blending uses it for the post-hoc mode (encode a finished clip, blend, decode) and, optionally, to
look at latents as frames when estimating flow. diffusers is imported by the caller, never here: the VAE is
passed in as an object (components in, not built from names).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from coherence.errors import ConfigError, InputError


@runtime_checkable
class Codec(Protocol):
    """Encodes frames to latents and decodes latents to frames.

    ``encode(frames)``: ``(T, 3, H, W)`` float32 in [0, 1] -> ``(T, C, h, w)`` latents (the scaled latent space
    a diffusion model works in). ``decode(latents)``: ``(T, C, h, w)`` -> ``(T, 3, H, W)`` float32 in [0, 1].
    """

    def encode(self, frames: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"a codec encodes (T, 3, H, W) frames, got {shape}")


def _check_latents(latents: torch.Tensor) -> None:
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4:
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise InputError(f"a codec decodes (T, C, h, w) latents, got {shape}")


class IdentityCodec:
    """Latents are the frames themselves: ``(T, 3, H, W)`` in [0, 1] both ways (blending in pixel space)."""

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames)
        return frames.float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        _check_latents(latents)
        return latents.float().clamp(0.0, 1.0)


class VAECodec:
    """A diffusers ``AutoencoderKL`` or ``AutoencoderTiny`` as a codec, in the scaled latent space of its model.

    diffusers VAEs take images in [-1, 1]. ``AutoencoderKL`` latents are the posterior mean mapped as the
    pipelines do, ``z = (mean - shift_factor) * scaling_factor`` (diffusers ``autoencoder_kl.py`` config; the
    shift is 0 for SD-family VAEs); ``AutoencoderTiny`` (TAESD) latents are used as is, its ``scaling_factor``
    being 1.

    Args:
        vae: the diffusers autoencoder (already on its device and dtype).
        batch_size: frames per encoder/decoder call (bounds peak memory).
    """

    def __init__(self, vae: Any, *, batch_size: int = 8) -> None:
        if not hasattr(vae, "encode") or not hasattr(vae, "decode") or not hasattr(vae, "config"):
            raise ConfigError(f"VAECodec needs a diffusers autoencoder, got {type(vae).__name__}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.vae = vae
        self.batch_size = batch_size
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        self.shift_factor = float(getattr(vae.config, "shift_factor", 0.0) or 0.0)
        param = next(vae.parameters(), None)
        self.device = param.device if param is not None else torch.device("cpu")
        self.dtype = param.dtype if param is not None else torch.float32

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        out = self.vae.encode(images)
        if hasattr(out, "latent_dist"):  # AutoencoderKL: a diagonal Gaussian posterior; its mode is deterministic
            return (out.latent_dist.mode() - self.shift_factor) * self.scaling_factor
        return out.latents * self.scaling_factor  # AutoencoderTiny

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``(T, 3, H, W)`` float32 in [0, 1] -> ``(T, C, h, w)`` scaled latents (float32, on the VAE device)."""
        _check_frames(frames)
        chunks = []
        for start in range(0, frames.shape[0], self.batch_size):
            images = frames[start:start + self.batch_size].to(self.device, self.dtype) * 2.0 - 1.0
            chunks.append(self._encode_batch(images).float())
        return torch.cat(chunks)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``(T, C, h, w)`` scaled latents -> ``(T, 3, H, W)`` float32 in [0, 1] (on the VAE device)."""
        _check_latents(latents)
        chunks = []
        for start in range(0, latents.shape[0], self.batch_size):
            z = latents[start:start + self.batch_size].to(self.device, self.dtype)
            images = self.vae.decode(z / self.scaling_factor + self.shift_factor).sample
            chunks.append(images.float().add(1.0).div(2.0).clamp(0.0, 1.0))
        return torch.cat(chunks)
