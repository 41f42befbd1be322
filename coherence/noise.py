"""How noisy a clip is, and the trajectory filter's decay and the spatial filters' colour scales that its noise
calls for.

A preset's decay (:mod:`coherence.smooth_presets`) fixes how much of a pixel's noise the trajectory filter leaves:
the two-sided exponential filter of decay ``d`` scales white noise by :func:`noise_gain` (0.59 for ``default``'s
0.3). That is sized for the noise the presets were made for; a clip with twice the noise kept twice the residue,
and its warping error with it. So the noise is measured (:func:`link_noise`, on the first aligned pairs of the
clip) and, above :data:`NOISE_REFERENCE`, the decay is raised until the residue is what the reference noise would
leave (:func:`adapted_decay`), up to :data:`DECAY_CEILING`, the ``strong`` preset's; the bilateral filters after
it widen their colour scales in proportion (:func:`noise_scale`).

The measurement is the high-frequency part of the difference between a frame and its flow-aligned successor where
the trajectory holds: the Laplacian takes out what the flow and the deflicker left at low frequencies (boiling
texture, illumination), and the median of its magnitude is robust to the pixels the occlusion test missed. It is
in levels of 255 of luma. The bilinear warp averages the successor's noise away, the more so the nearer the flow
falls to half a pixel (through the Laplacian, a half-pixel shift along both axes leaves 1/36 of its variance): each
pixel's difference is scaled by what its flow's fractions leave (:func:`_warped_noise_share`), so that a pan reads
the noise a still scene does. (Before it was, the per-channel Gaussian noise of σ 4 levels of
``benchmarks.smoothing`` read 2.0 on the panning bikes clip and 2.6 on bunny; it now reads 2.6-2.7 on both, the
luma of that noise. The generated clips of ``benchmarks.smoothing_generated`` that are video files read under 1.)

A palette image (a GIF: at most 256 colours) is dithered: the encoder scatters pixels of neighbouring palette
colours to stand for the colours it lacks, and that pattern, redrawn whenever the content moves, is what the
measurement would read (up to 15 levels on the generated GIFs). It is a property of the file, and filtering it away
as noise would rewrite the image the user sees; a palette clip keeps its preset's decay.

So does a small frame (short side under :data:`MIN_ADAPTED_SIDE`): DIS's 8-pixel patches at half resolution then
cover much of a moving object, the flow misaligns its edges, and a longer filter averages more of the misaligned
samples. On noisy synthetic clips (σ 6 levels per channel) a decay raised to 0.45 cost 0.3-0.7 dB at 128x96, and
gained 0.15-0.18 dB at 256x160 and 0.5-0.7 dB at 512x320.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from coherence.flow.dis import luma_levels
from coherence.trajectory import warp_channels_last

# the noise (see the module docstring) that the presets' decays are sized for, in the measurement's levels
NOISE_REFERENCE = 2.5
# the highest decay the noise can raise a preset's to (the ``strong`` preset's)
DECAY_CEILING = 0.6
# aligned pairs measured at the start of a clip, and the least share of a frame the trajectory must hold on
NOISE_PAIRS = 8
_MIN_HELD = 0.05
# the largest number of distinct colours of a palette image
PALETTE_COLOURS = 256
# the shortest side of a frame whose decay the noise raises
MIN_ADAPTED_SIDE = 240

_LAPLACIAN = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32) / 6.0  # unit gain on white noise


def link_noise(frame: torch.Tensor, following: torch.Tensor, to_following: torch.Tensor,
               held: torch.Tensor) -> float | None:
    """The noise of a consecutive pair: the robust standard deviation of the Laplacian of their aligned difference.

    Args:
        frame: ``(3, H, W)`` float32 in [0, 1] (any device: the measurement runs on the CPU).
        following: ``(3, H, W)`` the next frame.
        to_following: ``(1, 2, H, W)`` flow from ``frame`` to ``following``, pixels.
        held: ``(H, W)`` where the trajectory holds (non-zero) or breaks (0).

    Returns:
        Levels of 255 per frame (the difference's deviation over √2), or ``None`` where the trajectory holds on
        less than :data:`_MIN_HELD` of the frame.
    """
    frame, following, to_following, held = (x.detach().cpu() for x in (frame, following, to_following, held))
    aligned = warp_channels_last(torch.from_numpy(luma_levels(following.numpy()))[..., None], to_following)[..., 0]
    detail = cv2.filter2D(luma_levels(frame.numpy()) - aligned.numpy(), -1, _LAPLACIAN,
                          borderType=cv2.BORDER_REFLECT)
    # the Laplacian reaches one pixel: only pixels whose 3x3 neighbourhood holds
    inside = cv2.erode((held.numpy() > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if inside.mean() < _MIN_HELD:
        return None
    # the difference's variance is the frame's noise plus the warped successor's share of it
    share = _warped_noise_share(to_following[0, 0].numpy()[inside], to_following[0, 1].numpy()[inside])
    return float(np.median(np.abs(detail[inside]) / np.sqrt(1.0 + share))) / 0.6745


def _warped_noise_share(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The share of white noise's variance that survives a bilinear warp by ``(dx, dy)`` pixels and then
    :data:`_LAPLACIAN` (1 at whole pixels, 1/36 at half a pixel along both axes).

    The warp convolves the noise with the weights ``(1 - a, a)`` of the flow's fraction ``a`` along each axis; the
    Laplacian is ``l ⊗ l / 6`` with ``l = (1, -2, 1)``, and ``|l * (1 - a, a)|² = 20a² - 20a + 6`` per axis.
    """
    a, b = dx - np.floor(dx), dy - np.floor(dy)
    return (20 * a * a - 20 * a + 6) * (20 * b * b - 20 * b + 6) / 36.0


def is_palette(frame: torch.Tensor) -> bool:
    """Whether a ``(3, H, W)`` float32 frame in [0, 1] has at most :data:`PALETTE_COLOURS` distinct colours."""
    levels = frame.mul(255.0).round_().to(torch.int32)
    packed = (levels[0] << 16) | (levels[1] << 8) | levels[2]
    return torch.unique(packed).numel() <= PALETTE_COLOURS


def noise_gain(decay: float) -> float:
    """The factor by which the two-sided exponential filter of ``decay`` (weights ``decay ** |k|``) scales white
    noise: ``sqrt(sum w²) / sum w``."""
    return math.sqrt((1.0 + decay**2) / (1.0 - decay**2)) * (1.0 - decay) / (1.0 + decay)


def noise_scale(noise: float | None) -> float:
    """How many times the reference noise a clip carries (:data:`NOISE_REFERENCE`; 1 where the noise is unknown or
    lower): the factor of the spatial filters' colour scales.

    The bilateral filters that follow the trajectory filter (the spatial fallback of :mod:`coherence.fallback` and
    the chroma filter of :mod:`coherence.chroma`) tell noise from texture by a colour scale that the presets size
    for the reference noise: a clip with twice the noise would see most of its noise read as texture and kept. So
    the scales grow with the noise, as the decay does (and go on growing where the decay has reached its ceiling).
    With the artefacts of ``benchmarks.smoothing`` twice as strong (noise reading 5.15), this took bikes' warping
    error from 1.54x to 1.17x the clean clip's (seed 3) and from 1.76x to 1.31x (seed 4) at 0.35-0.4 dB more, and
    bunny's from 1.13x to 0.92x at 0.04 dB more; noisy synthetic scenes (σ 8 levels per channel, 320x240 and
    640x360) lost 0.04-0.11 dB.
    """
    return 1.0 if noise is None else max(1.0, noise / NOISE_REFERENCE)


def adapted_decay(decay: float, noise: float | None) -> float:
    """The decay that leaves ``noise`` the residue :data:`NOISE_REFERENCE` would keep under ``decay``.

    Args:
        decay: the preset's decay, in [0, 1).
        noise: the clip's noise (:func:`link_noise`), ``None`` where unknown.

    Returns:
        ``decay`` where the noise is unknown or at most the reference (or ``decay`` is 0: the filter is off), else
        the decay whose :func:`noise_gain` is ``noise_gain(decay) * NOISE_REFERENCE / noise``, at most
        :data:`DECAY_CEILING` (``noise_gain`` falls steadily with the decay: bisection).
    """
    if noise is None or noise <= NOISE_REFERENCE or decay <= 0.0 or decay >= DECAY_CEILING:
        return decay
    target = noise_gain(decay) * NOISE_REFERENCE / noise
    if noise_gain(DECAY_CEILING) >= target:
        return DECAY_CEILING
    low, high = decay, DECAY_CEILING
    for _ in range(40):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if noise_gain(middle) > target else (low, middle)
    return low
