"""Procedural scenes rendered with exact ground truth: clean frames, true optical flow and occlusion masks.

A scene is a stack of layers drawn in painter's order: a background plane under a camera pan and zoom, then
textured discs and rectangles, each moving, turning and breathing on its own path. Every layer is a similarity
transform ``p = c(t) + s(t) R(θ(t)) u`` of a periodic texture (``u`` in texture pixels), so frames are rendered
by backward mapping (each pixel looks up its exact source coordinate ``u`` in the top-most layer that covers it)
and the true flow follows in closed form: the point seen at ``p`` in frame ``t`` is at
``c(t+1) + s(t+1) R(θ(t+1)) u`` in frame ``t + 1``. It is occluded when another layer covers that position in
frame ``t + 1`` or it leaves the frame. Flow convention as in :mod:`coherence.flow.ops`:
``frame_t(p) ≈ frame_{t+1}(p + flow(p))``.

Textures are random fields with a ``1/f`` amplitude spectrum (the statistics of natural images, Field 1987)
rolled off by a Gaussian at a period of a few pixels, so that they look like generated detail at every scale yet
stay smooth enough for bilinear resampling to be exact to well under 1% (what makes the flow checkable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from coherence.errors import ConfigError

_BACKGROUND_TEXTURE = 256
_OBJECT_TEXTURE = 64
# elements per (layers, frames, H, W) working tensor of one render chunk
_CHUNK_ELEMENTS = 4_000_000


def noise_texture(gen: torch.Generator, size: int, *, finest: float, contrast: float) -> torch.Tensor:
    """A seamless (periodic) colour texture with a ``1/f`` spectrum rolled off at a period of ``finest`` pixels.

    Returns:
        ``(3, size, size)`` float32 in [0, 1].
    """
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None]
    freq = (fx.square() + fy.square()).sqrt()
    amplitude = (freq + 1.0 / size).reciprocal() * torch.exp(-(freq * finest).square())
    spectrum = torch.complex(torch.randn(3, *freq.shape, generator=gen), torch.randn(3, *freq.shape, generator=gen))
    fields = torch.fft.irfft2(spectrum * amplitude, s=(size, size))
    fields = (fields - fields.mean((1, 2), keepdim=True)) / fields.std(dim=(1, 2), keepdim=True)
    # mostly luminance variation (one shared field) with some chroma, around a random base colour
    mix = 0.35 * torch.randn(3, 3, generator=gen)
    mix[:, 0] += 0.8
    base = 0.3 + 0.4 * torch.rand(3, 1, 1, generator=gen)
    return (base + contrast * torch.einsum("ij,jhw->ihw", mix, fields)).clamp(0.0, 1.0)


def _sample_periodic(texture: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of periodic textures at texture-pixel coordinates, wrapping around.

    Args:
        texture: ``(N, 3, S, S)``.
        x, y: ``(N, M, H, W)`` coordinates, any real values.

    Returns:
        ``(N, M, 3, H, W)``.
    """
    size = texture.shape[-1]
    # one wrapped row and column so that bilinear interpolation across the seam is exact
    padded = torch.cat((texture, texture[..., :1, :]), dim=-2)
    padded = torch.cat((padded, padded[..., :1]), dim=-1)
    grid = torch.stack((torch.remainder(x, size), torch.remainder(y, size)), dim=-1) * (2.0 / size) - 1.0
    n, m, h, w, _ = grid.shape
    out = F.grid_sample(padded, grid.reshape(n, m * h, w, 2), mode="bilinear", align_corners=True)
    return out.reshape(n, 3, m, h, w).transpose(1, 2)


def _to_local(x: torch.Tensor, y: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert ``p = c + s R(θ) u``: screen ``(x, y)`` ``(M, H, W)`` → local ``u`` ``(L, M, H, W)`` for poses
    ``(L, M, 4)`` = ``(cx, cy, s, θ)``."""
    cx, cy, s, th = (pose[..., i, None, None] for i in range(4))
    dx, dy = x - cx, y - cy
    cos, sin = torch.cos(th), torch.sin(th)
    return (cos * dx + sin * dy) / s, (-sin * dx + cos * dy) / s


def _to_screen(ux: torch.Tensor, uy: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``p = c + s R(θ) u`` for local ``u`` ``(L, M, H, W)`` and poses ``(L, M, 4)``."""
    cx, cy, s, th = (pose[..., i, None, None] for i in range(4))
    cos, sin = torch.cos(th), torch.sin(th)
    return cx + s * (cos * ux - sin * uy), cy + s * (sin * ux + cos * uy)


@dataclass(frozen=True)
class SceneRender:
    """One rendered scene.

    Attributes:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        flow: true ``flow(t, t + 1)``, ``(T - 1, 2, H, W)`` float32 pixels (x then y).
        occlusion: ``(T - 1, 1, H, W)`` float32 in {0, 1}; 1 where the point seen at ``p`` in frame ``t`` is covered
            by another layer or out of frame in frame ``t + 1``.
        layers: ``(T, H, W)`` int64 id of the visible layer (0 background, ``k`` the k-th object).
    """

    frames: torch.Tensor
    flow: torch.Tensor
    occlusion: torch.Tensor
    layers: torch.Tensor


class SyntheticScene:
    """A procedural scene drawn from ``seed``: a textured background under a camera pan and zoom and ``objects``
    textured discs and rectangles that move, rotate, scale and occlude each other.

    Args:
        width, height: frame size in pixels.
        seed: every random choice (textures, shapes, paths) follows from it.
        objects: number of moving objects.
        pan: camera pan speed, pixels per frame (direction drawn from the seed).
        zoom: camera zoom rate, relative scale change per frame (sign drawn from the seed).
        speed: typical object speed, pixels per frame.
        texture_scale: size of a texture pixel in scene pixels (larger means coarser detail).
    """

    def __init__(self, width: int, height: int, *, seed: int = 0, objects: int = 4, pan: float = 1.0,
                 zoom: float = 0.004, speed: float = 1.5, texture_scale: float = 1.0) -> None:
        if width < 8 or height < 8:
            raise ConfigError(f"a synthetic scene needs at least 8x8 pixels, got {width}x{height}")
        if objects < 0:
            raise ConfigError(f"the number of objects must be 0 or more, got {objects}")
        if texture_scale <= 0:
            raise ConfigError(f"texture_scale must be positive, got {texture_scale}")
        self.width, self.height = int(width), int(height)
        self.texture_scale = float(texture_scale)
        gen = torch.Generator().manual_seed(int(seed) % (2**63))
        self.background = noise_texture(gen, _BACKGROUND_TEXTURE, finest=6.0, contrast=0.16)
        direction = torch.rand((), generator=gen) * 2 * math.pi
        self._pan = float(pan) * torch.stack((torch.cos(direction), torch.sin(direction)))
        self._zoom = float(zoom) * (1.0 if torch.rand((), generator=gen) < 0.5 else -1.0)
        self._origin = torch.rand(2, generator=gen) * _BACKGROUND_TEXTURE

        k = int(objects)
        short = min(self.width, self.height)
        self.textures = torch.stack([noise_texture(gen, _OBJECT_TEXTURE, finest=5.0, contrast=0.22)
                                     for _ in range(k)]) if k else torch.zeros(0, 3, _OBJECT_TEXTURE, _OBJECT_TEXTURE)
        self.is_disc = torch.rand(k, generator=gen) < 0.5
        self.extent = short * (0.1 + 0.12 * torch.rand(k, 2, generator=gen))  # disc radius = extent[:, 0]
        self._offset = torch.rand(k, 2, generator=gen) * _OBJECT_TEXTURE
        size = torch.tensor([self.width, self.height], dtype=torch.float32)
        self._centre = size * (0.2 + 0.6 * torch.rand(k, 2, generator=gen))
        # Lissajous paths keep objects in view on clips of any length; amplitude = speed / angular rate
        self._omega = 0.04 + 0.1 * torch.rand(k, 2, generator=gen)
        self._phase = torch.rand(k, 2, generator=gen) * 2 * math.pi
        velocity = float(speed) * (0.5 + torch.rand(k, 2, generator=gen))
        self._amplitude = torch.minimum(velocity / self._omega, 0.3 * size)
        self._angle = torch.rand(k, generator=gen) * 2 * math.pi
        self._spin = 0.03 * (2 * torch.rand(k, generator=gen) - 1)
        self._breath = 0.1 * torch.rand(k, generator=gen)
        self._breath_phase = torch.rand(k, generator=gen) * 2 * math.pi

    @property
    def objects(self) -> int:
        """Number of moving objects."""
        return int(self.textures.shape[0])

    def poses(self, times: torch.Tensor) -> torch.Tensor:
        """Layer poses ``(1 + objects, M, 4)`` = ``(cx, cy, s, θ)`` at the frame times ``(M,)``, background first."""
        t = times.float()
        scale = torch.exp(self._zoom * t)
        centre = torch.tensor([(self.width - 1) / 2, (self.height - 1) / 2])
        # the background point under the frame centre drifts at the pan speed (in screen pixels)
        looked_at = self._origin + self._pan * t[:, None] / scale[:, None]
        cam = centre - scale[:, None] * looked_at
        background = torch.stack((cam[:, 0], cam[:, 1], scale, torch.zeros_like(t)), dim=-1)[None]
        tt = t[None, :, None]
        pos = self._centre[:, None] + self._amplitude[:, None] * torch.sin(self._omega[:, None] * tt
                                                                           + self._phase[:, None])
        s = 1.0 + self._breath[:, None] * torch.sin(0.07 * t[None] + self._breath_phase[:, None])
        angle = self._angle[:, None] + self._spin[:, None] * t[None]
        objects = torch.stack((pos[..., 0], pos[..., 1], s, angle), dim=-1)
        return torch.cat((background, objects))

    def _inside(self, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
        """Object coverage ``(K, M, H, W)`` bool for object-local coordinates ``(K, M, H, W)``."""
        a = self.extent[:, 0, None, None, None]
        b = self.extent[:, 1, None, None, None]
        disc = ux.square() + uy.square() < a.square()
        rect = (ux.abs() < a) & (uy.abs() < b)
        return torch.where(self.is_disc[:, None, None, None], disc, rect)

    def _top_layer(self, x: torch.Tensor, y: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """Id of the top-most layer at screen points ``(M, H, W)``: ``(M, H, W)`` int64, 0 for the background."""
        if self.objects == 0:
            return torch.zeros(x.shape, dtype=torch.long)
        ux, uy = _to_local(x, y, poses[1:])
        inside = self._inside(ux, uy)
        ids = torch.arange(1, self.objects + 1).view(-1, 1, 1, 1)
        return (inside * ids).amax(0)

    def render(self, frames: int, *, start: int = 0) -> SceneRender:
        """Render frames ``start .. start + frames - 1`` with their true flow and occlusion."""
        if frames < 1:
            raise ConfigError(f"the number of frames must be at least 1, got {frames}")
        # bounded working memory: chunks of frames, each rendered with the frame after it for its flow
        chunk = max(2, _CHUNK_ELEMENTS // ((1 + self.objects) * self.height * self.width))
        end = start + frames
        parts = [self._render_times(torch.arange(first, min(first + chunk, end - 1) + 1), keep=min(chunk, end - first))
                 for first in range(start, end, chunk)]
        return SceneRender(*(torch.cat(part) for part in zip(*parts)))

    def _render_times(self, times: torch.Tensor, *, keep: int) -> tuple[torch.Tensor, ...]:
        """Frames, flow, occlusion and layer ids (as :class:`SceneRender`) of the first ``keep`` of ``times``;
        the flow of all ``len(times) - 1`` pairs."""
        h, w, m = self.height, self.width, len(times)
        poses = self.poses(times)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
        x, y = xs.expand(m, h, w), ys.expand(m, h, w)
        ux, uy = _to_local(x, y, poses)  # (L, M, H, W)

        tx, ty = ux[:, :keep] / self.texture_scale, uy[:, :keep] / self.texture_scale
        colour = _sample_periodic(self.background[None], tx[:1], ty[:1])
        if self.objects:
            off = self._offset[:, :, None, None, None]
            colour = torch.cat((colour, _sample_periodic(self.textures, tx[1:] + off[:, 0], ty[1:] + off[:, 1])))
        layers = self._top_layer(x, y, poses)
        image = colour.gather(0, layers[None, :keep, None].expand(1, keep, 3, h, w))[0]

        # true flow: carry each layer's local point to the next frame's pose, keep the visible layer's
        nx, ny = _to_screen(ux[:, :-1], uy[:, :-1], poses[:, 1:])
        visible = layers[:-1]
        qx = nx.gather(0, visible[None])[0]
        qy = ny.gather(0, visible[None])[0]
        flow = torch.stack((qx - x[:-1], qy - y[:-1]), dim=1)
        covered = self._top_layer(qx, qy, poses[:, 1:]) != visible
        outside = (qx < 0) | (qx > w - 1) | (qy < 0) | (qy > h - 1)
        occlusion = (covered | outside)[:, None].float()
        return image.contiguous(), flow, occlusion, layers[:keep]
