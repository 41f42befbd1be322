"""Illumination and colour deflicker at low resolution: the multiplicative correction of one frame against its
flow-aligned temporal neighbours.

Generated video flickers multiplicatively and at low spatial frequency (global exposure, per-channel colour
cast, smooth regional fields). In the log domain such a flicker is additive: a neighbour ``s`` aligned onto
frame ``t`` differs from it by ``log M_s - log M_t`` plus content changes. Averaging that difference over a
window of neighbours (frame ``t`` itself included, with difference 0) gives a correction that moves frame
``t`` to the window's geometric-mean illumination, whose error against the clean illumination falls as one over
the square root of the window's effective size. The neighbours weigh less the further they are
(:func:`window_weights`, a triangle): with equal weights a frame entering or leaving the window moves the target
by a full share of its own flicker, and that step, frame after frame, is flicker again; tapered weights change
by little from one frame to the next. (At the same effective size, a triangle twice as long halves the target's
frame-to-frame change. Against equal weights over 0.25 s, a triangle over 0.4 s gained 0.1-0.35 dB on the
degraded real clips of ``benchmarks.smoothing`` and took the generated clips of ``benchmarks.smoothing_generated``
from 63.5% of their warping error removed at 35.24 dB to 64.1% at 35.44 dB; 0.5 s did no better.)
This is the low-frequency half of Bonneel et al. 2015 ("Blind Video Temporal Consistency", SIGGRAPH Asia):
there the output's low frequencies follow the warped previous output; here they follow a centred window, so
nothing lags and nothing accumulates.

Everything here runs on thumbnails (a long side of about 64 pixels): flows are composed there cheaply, and
the area averaging removes the noise that would bias the log ratios. The module also holds the resampling
helper that the trajectory stage of :mod:`coherence.smooth` shares (``resize``)
and what the flow estimator is shown (``flow_image``, normalised against exactly this kind of flicker).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from coherence.flow.ops import compose_flow, out_of_frame, warp

# thumbnail long side, in pixels: enough to follow a 4x6 grid of flicker control points, small enough that
# composing flows over a 17-frame window costs about a millisecond
THUMB_LONG_SIDE = 64
# log(x + EPS): keeps near-black pixels from dominating the ratios
EPS = 0.02
# pixels this close to 0 or 1 are clipped and no longer scale with the illumination
CLIP_LOW, CLIP_HIGH = 0.03, 0.97
# a neighbour aligned on less than this share of the thumbnail does not vote (a cut missed, a whip pan)
_MIN_COVERAGE = 0.05
# the flow sees each frame divided by its own blur at this fraction of the long side (see flow_image)
_FLOW_NORM_SCALE = 0.02
# outlier_weights: the log-ratio deviation from a smooth fit at which a sample's weight falls to 1/e
OUTLIER_TOLERANCE = 0.08
# fitted_field: a local field whose spatial standard deviation (log units) exceeds FIELD_REFERENCE is fitted at the
# scale times (FIELD_REFERENCE / amplitude) ** _FIELD_EXPONENT, down to _FINEST_FIELD times it
FIELD_REFERENCE, _FIELD_EXPONENT, _FINEST_FIELD = 0.015, 0.5, 0.4
# a frame's correction is fitted this many times, each fit after the first against its neighbours' previous fits
# (residual_ratios; refit_share says how much of each later fit is taken)
FITS = 3
# the most channels that OpenCV's Python binding takes as the channels of one image (not CV_CN_MAX, 512)
_MAX_CHANNELS = 128


def thumb_size(height: int, width: int) -> tuple[int, int]:
    """Thumbnail ``(h, w)`` for a ``height x width`` frame: long side about :data:`THUMB_LONG_SIDE`, never upscaled."""
    scale = min(1.0, THUMB_LONG_SIDE / max(height, width))
    return max(4, round(height * scale)), max(4, round(width * scale))


def resize(images: torch.Tensor, size: tuple[int, int], *, mode: str) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` float32 images to ``size = (h, w)`` with ``"area"`` or ``"bilinear"``
    (half-pixel centres, like ``align_corners=False``).

    On the CPU, OpenCV's ``resize`` does it plane by plane (several times faster than ``interpolate`` there).
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if images.device.type != "cpu":
        extra = {} if mode == "area" else {"align_corners": False}
        return F.interpolate(images, size=size, mode=mode, **extra)
    interpolation = cv2.INTER_AREA if mode == "area" else cv2.INTER_LINEAR
    n, c = images.shape[:2]
    planes = images.detach().reshape(n * c, *images.shape[-2:]).contiguous().numpy()
    out = np.empty((n * c, *size), dtype=np.float32)
    for i in range(n * c):
        cv2.resize(planes[i], (size[1], size[0]), dst=out[i], interpolation=interpolation)
    return torch.from_numpy(out).reshape(n, c, *size)


def log_thumbnail(frame: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Area-averaged thumbnail in the log domain, and where it is usable.

    Args:
        frame: ``(3, H, W)`` float32 in [0, 1].
        size: thumbnail ``(h, w)``.

    Returns:
        ``(log_thumb, usable)``: ``(3, h, w)`` ``log(x + EPS)`` and a ``(3, h, w)`` float mask, 0 where that
        channel is clipped (a sky whose blue clips still has its red and green).
    """
    thumb = resize(frame[None], size, mode="area")[0]
    usable = ((thumb > CLIP_LOW) & (thumb < CLIP_HIGH)).to(thumb.dtype)
    return thumb.add(EPS).log_(), usable


def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, h, w)`` thumbnails with replicated borders (sigma in pixels).

    On the CPU, OpenCV's ``sepFilter2D`` applies the same kernel to all the planes at once, as the channels of one
    image (several times faster than ``conv2d`` on these small planes, and than a call per plane).
    """
    kernel = _gaussian_kernel(sigma, images.device, images.dtype)
    n, c, h, w = images.shape
    if images.device.type == "cpu":
        taps = kernel.numpy()
        planes = images.detach().reshape(n * c, h, w).permute(1, 2, 0).contiguous().numpy()
        out = np.empty_like(planes)
        for start in range(0, n * c, _MAX_CHANNELS):
            part = cv2.sepFilter2D(np.ascontiguousarray(planes[..., start:start + _MAX_CHANNELS]), -1, taps, taps,
                                   borderType=cv2.BORDER_REPLICATE)
            out[..., start:start + _MAX_CHANNELS] = part.reshape(h, w, -1)
        return torch.from_numpy(out).permute(2, 0, 1).reshape(n, c, h, w)
    radius = kernel.numel() // 2
    flat = images.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def window_flows(forward: list[torch.Tensor], backward: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Compose consecutive thumbnail flows into flows between a frame and each neighbour along one direction.

    Args:
        forward: ``k`` flows ``(1, 2, h, w)``: ``forward[i] = flow(f_i, f_{i+1})`` along the chain
            ``f_0 = t, f_1, ..., f_k`` (a chain of later or of earlier frames).
        backward: ``backward[i] = flow(f_{i+1}, f_i)``.

    Returns:
        For each ``j = 1..k``: ``(flow(t, f_j), flow(f_j, t))``.
    """
    if not forward:
        return []
    to_far, from_far = forward[0], backward[0]
    out = [(to_far, from_far)]
    for fwd, bwd in zip(forward[1:], backward[1:], strict=True):
        # both compositions in one warp: the per-call cost dominates on thumbnails
        to_far, from_far = compose_flow(torch.cat((to_far, bwd)), torch.cat((fwd, from_far))).split(1)
        out.append((to_far, from_far))
    return out


def aligned_ratios(reference: tuple[torch.Tensor, torch.Tensor],
                   neighbours: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[
                       torch.Tensor, torch.Tensor]:
    """Log ratios of aligned neighbours to a frame, and where each sample is valid, per channel.

    A sample is valid where the neighbour's flow is forward-backward consistent (Sundaram et al. 2010's test,
    in thumbnail pixels), stays inside the frame, and the channel is clipped in neither image.

    Args:
        reference: the frame's ``(log_thumb (3, h, w), usable (3, h, w))`` from :func:`log_thumbnail`.
        neighbours: per neighbour ``(log_thumb, usable, flow(t, s), flow(s, t))``, flows ``(1, 2, h, w)``.

    Returns:
        ``(ratio (K, 3, h, w), valid (K, 3, h, w))``, ``valid`` in [0, 1] (bilinear warps blend the masks).
    """
    log_t, usable_t = reference
    logs = torch.stack([n[0] for n in neighbours])
    usable = torch.stack([n[1] for n in neighbours])
    to_s = torch.cat([n[2] for n in neighbours])
    from_s = torch.cat([n[3] for n in neighbours])
    aligned = warp(torch.cat([logs, usable], 1), to_s)
    back = warp(from_s, to_s)
    inconsistent = (to_s + back).square().sum(1, keepdim=True) > 0.01 * (
        to_s.square().sum(1, keepdim=True) + back.square().sum(1, keepdim=True)) + 0.5
    valid = aligned[:, 3:] * usable_t[None] * (1.0 - inconsistent.to(logs.dtype)) * (1.0 - out_of_frame(to_s))
    return aligned[:, :3] - log_t[None], valid


def outlier_weights(ratio: torch.Tensor, valid: torch.Tensor, prior: torch.Tensor, *, sigma: float,
                    tolerance: float = OUTLIER_TOLERANCE) -> torch.Tensor:
    """How far each valid sample can be trusted: by how well its ratio agrees with a smooth fit of the ratios.

    One reweighting step of a robust fit: occlusions and flow errors are local, so they stand out from a fit at
    the field's scale and should not bend it. The fit is the Gaussian average (``sigma`` thumbnail pixels) of the
    ratios weighted by ``prior`` (``valid`` for a first step, a previous step's weights for the next); the test is
    the pixel's, over its valid channels.

    Args:
        ratio: ``(K, 3, h, w)`` and ``valid`` ``(K, 3, h, w)`` from :func:`aligned_ratios`.
        prior: ``(K, 3, h, w)`` the weights of the fit.
        sigma: spatial scale of the fit, thumbnail pixels.
        tolerance: log-ratio deviation from the fit at which a sample's weight falls to ``1/e``.

    Returns:
        ``(K, 3, h, w)`` weights in [0, 1]: ``valid`` times ``exp(-(deviation / tolerance)²)``.
    """
    fit = blur(ratio * prior, sigma) / blur(prior, sigma).clamp_min(1e-3)
    counted = (valid > 0).to(ratio.dtype)
    deviation = ((ratio - fit).square() * counted).sum(1, keepdim=True) / counted.sum(1, keepdim=True).clamp_min(1.0)
    return valid * torch.exp(-deviation / tolerance**2)


def global_gains(ratio: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neighbour, per-channel log gain: the trusted mean of the ratio.

    A neighbour's global gain is well determined even where only a fraction of it aligns (fast motion), so it
    is estimated apart from the local field, which needs the neighbour at each place.

    Args:
        ratio: ``(K, 3, h, w)`` from :func:`aligned_ratios` and ``weight`` ``(K, 3, h, w)`` from
            :func:`outlier_weights`.

    Returns:
        ``(gains (K, 3), trusted (K,))``: ``trusted`` is 0 for a neighbour aligned on too little of the frame
        (a missed cut, a whip pan), whose gain is then 0; so is a channel's gain where that channel is clipped
        everywhere.
    """
    mass = weight.sum((2, 3))
    trusted = (mass.mean(1) > _MIN_COVERAGE * weight[0, 0].numel()).to(ratio.dtype)
    gains = (ratio * weight).sum((2, 3)) / mass.clamp_min(1e-6)
    return gains * trusted[:, None], trusted


def window_weights(distances: torch.Tensor, radius: int) -> torch.Tensor:
    """Weights of neighbours ``distances`` frames away (``(K,)``, 1..``radius``) in a window of ``radius`` frames
    on each side: ``1 - d / (radius + 1)``, the frame itself (distance 0) weighing 1."""
    return 1.0 - distances.to(torch.float32) / (radius + 1)


def correction_field(ratio: torch.Tensor, weight: torch.Tensor, *, sigma: float,
                     temporal: torch.Tensor) -> torch.Tensor:
    """The log-domain correction of a frame: the mean global gain of its neighbours, per channel, plus a smooth
    achromatic local field.

    Global part: the mean over the trusted neighbours and the frame itself (gain 0) of their per-channel gains
    (:func:`global_gains`), each weighted by ``temporal``. Local part: the neighbours' trusted deviations from
    their own gains, with the frame's (deviation 0, weight 1 per channel), pooled over the channels and averaged
    by normalised convolution (Knutsson & Westin 1993) with a Gaussian of ``sigma`` thumbnail pixels, so a place
    that few neighbours see is corrected less, not wrongly. The field is one for all channels: regional
    illumination (shading, exposure falling off, a generator's regional brightness drift) scales the channels
    alike, colour casts are global; and a place where one channel clips (a blue sky) still gets its field from
    the others. (Per-channel fields did no better on the generated clips of ``benchmarks.smoothing_generated``;
    pooled, the degraded bunny clip of ``benchmarks.smoothing``, whose sky clips in blue, lost most of the
    warping error its sky kept.) Every neighbour is compared with the frame directly (through composed flows):
    chaining the gains of consecutive pairs instead would let their small biases add up along the chain.

    Args:
        ratio: ``(K, 3, h, w)`` from :func:`aligned_ratios` and ``weight`` ``(K, 3, h, w)`` from
            :func:`outlier_weights`.
        sigma: spatial scale of the field, in thumbnail pixels.
        temporal: ``(K,)`` weights of the neighbours (:func:`window_weights`; the frame's own is 1).

    Returns:
        ``(3, h, w)``: add it to the frame's log (multiply the frame by its exponential).
    """
    gains, trusted = global_gains(ratio, weight)
    trusted = trusted * temporal.to(trusted)
    weight = weight * trusted.view(-1, 1, 1, 1)
    local = ((ratio - gains[:, :, None, None]) * weight).sum((0, 1))[None, None]
    # the frame's own term: blurring its constant weight (1 per channel) leaves it
    field = (blur(local, sigma) / (blur(weight.sum((0, 1))[None, None], sigma) + ratio.shape[1]))[0]
    return field + ((gains * trusted[:, None]).sum(0) / (trusted.sum() + 1.0))[:, None, None]


def local_amplitude(correction: torch.Tensor) -> float:
    """The spatial standard deviation of a correction's achromatic local field (log units): how strongly a
    ``(3, h, w)`` correction of :func:`correction_field` varies across the frame (0 for a global gain)."""
    return float(correction.mean(0).std()) if correction[0].numel() > 1 else 0.0


@dataclass
class FieldFit:
    """A correction fitted by :func:`fitted_field` and what fitted it, for a later fit of the same samples to reuse."""

    field: torch.Tensor  # (3, h, w) the log-domain correction, as correction_field's
    weight: torch.Tensor  # (K, 3, h, w) the samples' outlier_weights
    sigma: float  # the spatial scale it was fitted at, thumbnail pixels


def fitted_field(ratio: torch.Tensor, valid: torch.Tensor, *, sigma: float, temporal: torch.Tensor) -> FieldFit:
    """A frame's correction (:func:`correction_field`) at a spatial scale fitted to the field it finds: ``sigma``
    for a weak field, finer for a strong one; its samples weighed by :func:`outlier_weights`.

    A Gaussian average of a field loses a share of it that grows with its scale (``sigma`` of 5% of the long side
    keeps about 72% of a field that varies over a quarter of the frame): what it leaves is flicker in proportion
    to the field's amplitude, while the noise it averages out (content changes read as light, occlusions the flow
    tests missed) does not grow with it. So the best scale falls as the field grows, as in plug-in bandwidth
    selection for kernel regression. A first pass at ``sigma`` measures the field (:func:`local_amplitude`); above
    :data:`FIELD_REFERENCE` the field is fitted again at ``sigma * sqrt(FIELD_REFERENCE / amplitude)`` (at least
    0.4 ``sigma``). The outlier test goes with it: a fit at ``sigma`` misses the same share of a strong field, and
    the samples at its peaks and troughs, which deviate from that fit by the share it missed, fall under the test.
    So the refit also takes a second reweighting step, against a fit at the finer scale weighted by the first
    step's weights (iteratively reweighted least squares: the outliers that the first step found do not bend the
    finer fit), and with a tolerance widened by the field's amplitude, ``hypot(OUTLIER_TOLERANCE, amplitude)``: the
    finer fit still misses a share of the field that grows with it, and a neighbour whose field differs most from
    the frame's is flicker to take out, not an outlier. (With the artefacts twice as strong, on bikes' fast pan
    past cars, the fixed tolerance kept half of the valid samples; the widened one took bikes' warping error from
    1.31x to 1.28x the clean clip's on seed 4 and from 1.27x to 1.24x on seed 6 for 0.00-0.04 dB, and moved the
    issue's artefacts by at most 0.03 dB.) The generated clips of ``benchmarks.smoothing_generated`` show fields of
    0.003-0.017 (median over a clip's frames) and stay where they were; the degraded real clips of
    ``benchmarks.smoothing`` show 0.03 with the issue's artefacts and 0.05 with them twice as strong.

    Args:
        ratio: ``(K, 3, h, w)`` and ``valid`` ``(K, 3, h, w)`` from :func:`aligned_ratios`.
        sigma: the coarsest spatial scale of the field, thumbnail pixels.
        temporal: ``(K,)`` weights of the neighbours (:func:`window_weights`).

    Returns:
        The ``(3, h, w)`` log-domain correction, with the weights and the scale that fitted it.
    """
    weight = outlier_weights(ratio, valid, valid, sigma=sigma)
    field = correction_field(ratio, weight, sigma=sigma, temporal=temporal)
    amplitude = local_amplitude(field)
    if amplitude <= FIELD_REFERENCE:
        return FieldFit(field, weight, sigma)
    finer = sigma * max(_FINEST_FIELD, (FIELD_REFERENCE / amplitude) ** _FIELD_EXPONENT)
    weight = outlier_weights(ratio, valid, weight, sigma=finer, tolerance=math.hypot(OUTLIER_TOLERANCE, amplitude))
    return FieldFit(correction_field(ratio, weight, sigma=finer, temporal=temporal), weight, finer)


def residual_ratios(ratio: torch.Tensor, to_s: torch.Tensor, neighbour_corrections: torch.Tensor,
                    correction: torch.Tensor) -> torch.Tensor:
    """The log ratios of aligned neighbours to a frame once each carries its own last correction.

    The correction of :func:`fitted_field` falls short of a strong flicker by a share of it: the frame's own term
    (deviation 0) and the outlier weights, which distrust the largest ratios, pull it towards 0, and the Gaussian
    fit misses the field's finest part. On the degraded real clips of ``benchmarks.smoothing`` about a third of the
    local field was left. Fitting again against the first corrections of the frame and its neighbours (the same
    samples, with only that shortfall left in them) takes most of it out: one more step of the estimator towards
    its fixed point, where the window's frames agree. A third fit, against the second corrections, goes one step
    further. Two things move at each step: the Gaussian fit ``G`` leaves ``(1 - G)`` of each spatial frequency of
    the field, so ``n`` fits leave ``(1 - G) ** n`` of it (Tukey's twicing, repeated), and each fit draws on the
    neighbours' previous fits, so the window reaches further in time. On the degraded real clips the third fit
    found 0.55-0.6 as much as the second, more than the spatial part alone would leave, so the reach in time counts
    too; yet a wider window alone (0.6 s instead of 0.4 s) did not lower bikes' warping error with the artefacts
    twice as strong, where the third fit took 9% off it. The third fit weighs the samples as the second did, at its
    scale (:class:`FieldFit`): its residual is the second's, smaller still, and its own outlier test found little more
    (bikes ×2 1.54× against 1.55×) at three times the cost (2 ms against 0.6 ms a frame). How much of each later fit
    is taken is :func:`refit_share`'s; :data:`FITS` fixes how many there are.

    Args:
        ratio: ``(K, 3, h, w)`` from :func:`aligned_ratios`.
        to_s: ``(K, 2, h, w)`` the flows that aligned the neighbours (``flow(t, s)``).
        neighbour_corrections: ``(K, 3, h, w)`` each neighbour's last correction (sums of :func:`fitted_field`s: one
            achromatic field plus a constant per channel, so only the field is warped).
        correction: ``(3, h, w)`` the frame's last correction.

    Returns:
        ``(K, 3, h, w)``, to fit with the same validity as ``ratio``.
    """
    field = neighbour_corrections.mean(1, keepdim=True)
    return ratio + warp(field, to_s) + (neighbour_corrections - field)[..., :1, :1] - correction[None]


def refit_share(amplitudes: Sequence[float], fit: int) -> float:
    """The share of fit ``fit`` (1 the second, 2 the third: :func:`residual_ratios`) that a frame takes, from how
    strong the local fields of the first fits across its window are (their mean :func:`local_amplitude`, ``m``):
    ``clamp(m / FIELD_REFERENCE - fit, 0, 1)``. The second fit is taken from :data:`FIELD_REFERENCE` on, whole from
    twice it; the third from twice it, whole from three times.

    A weak field's first fit is mostly what the content changes left in the ratios, not flicker, and its shortfall
    is the caution that keeps them out: the second fit found nearly as much again as the first (0.6-0.85 of its
    amplitude) on the generated clips of ``benchmarks.smoothing_generated``, and took their PSNR to the input from
    35.23 to 34.38 dB with no consistency gained. Their first fits read 0.003-0.016 (median over a clip's frames);
    the degraded real clips of ``benchmarks.smoothing`` read 0.03 with the issue's artefacts, and their second fits
    find a fifth to a third of the first. Each fit also carries the content changes the neighbours' fits read as
    light a little further, so a further fit pays only on a stronger field: with the issue's artefacts, a third
    fit on every frame cost bikes 0.1-0.5 dB for 3% less warping error, while at twice them (fields of 0.05) it
    took 9% off it. The window's mean, not the frame's own, so that the share changes slowly.

    Args:
        amplitudes: the local amplitudes of the first fits of the frame and its neighbours.
        fit: which fit, counting the first as 0 (at least 1).

    Returns:
        In [0, 1].
    """
    return min(1.0, max(0.0, sum(amplitudes) / len(amplitudes) / FIELD_REFERENCE - fit))


def apply_correction(frame: torch.Tensor, correction: torch.Tensor, *, strength: float = 1.0) -> torch.Tensor:
    """Multiply a frame by the exponential of an upsampled thumbnail correction.

    Args:
        frame: ``(3, H, W)`` float32 in [0, 1].
        correction: ``(3, h, w)`` log-domain correction from :func:`correction_field`.
        strength: fraction of the correction applied (0 leaves the frame unchanged).

    Returns:
        ``(3, H, W)`` float32 in [0, 1]. The ``+ EPS`` of the log domain is honoured: ``x + EPS`` is scaled.
    """
    gain = torch.exp(correction * strength)
    gain = resize(gain[None], tuple(frame.shape[-2:]), mode="bilinear")[0]
    return frame.add(EPS).mul_(gain).sub_(EPS).clamp_(0.0, 1.0)


def correction_precision(correction: torch.Tensor, size: tuple[int, int], *, strength: float = 1.0) -> torch.Tensor:
    """What each pixel's sample is worth once corrected, as an inverse noise variance relative to the input's.

    Multiplying a frame by a gain multiplies its noise by the same gain: a dark frame of the flicker brightened
    by 1.3 carries 1.7 times the noise variance of a frame left as it was, so in an average of aligned frames it
    should weigh 1/1.7 as much (inverse-variance weighting), and a frame darkened by the correction more. The
    channels' mean log gain stands for the three channels' (the trajectory filter has one weight per pixel).

    Args:
        correction: ``(3, h, w)`` log-domain correction from :func:`correction_field`.
        size: the frame's ``(H, W)``.
        strength: fraction of the correction applied (as in :func:`apply_correction`).

    Returns:
        ``(H, W)`` float32, positive: ``exp(-2 * strength * mean over channels of correction)``, upsampled.
    """
    precision = torch.exp(correction.mean(0, keepdim=True).mul_(-2.0 * strength))
    return resize(precision[None], size, mode="bilinear")[0, 0]


def flow_image(half: torch.Tensor) -> torch.Tensor:
    """What the flow estimator sees: a ``(1, 3, h, w)`` frame divided by its own Gaussian blur (σ 2% of the
    long side), scaled to mid-grey.

    Patch-matching flow (DIS) assumes brightness constancy; the per-frame gain, colour cast and smooth local
    illumination fields this stage exists to remove break it (on degraded real clips about 70% of the pixels
    then fail the forward-backward test, against 15% on the clean clip). Their ratio to a local mean is nearly
    invariant to a smooth multiplicative field (the ratio image of retinex-style normalisation), which brings
    the failure rate back to the clean clip's.
    """
    sigma = max(8.0, _FLOW_NORM_SCALE * max(half.shape[-2:]))
    if half.device.type != "cpu":
        return (half / (blur(half, sigma) + 0.02) * 0.5).clamp_(0.0, 1.0)
    planes = half[0].contiguous().numpy()
    out = np.empty_like(planes)
    for c in range(planes.shape[0]):
        local = cv2.GaussianBlur(planes[c], (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        np.divide(planes[c], local + 0.02, out=out[c])
    np.clip(out * 0.5, 0.0, 1.0, out=out)
    return torch.from_numpy(out)[None]
