"""Filtering along flow trajectories: the weights of a pair's trajectories, the accumulators and the one step of
:mod:`coherence.smooth`'s temporal filter, and the trajectories' smoothed position (de-jittering).

An accumulator is a channels-last ``(H, W, C)`` float32 tensor: colour sums, then the sum of weights, so that a
normalised filter is a sum of accumulators divided by its weight channel. With ``C = 7`` it also carries where
the trajectory went: the weighted sums of the offset (x, y, pixels) from the frame's pixel to the trajectory's
position in each frame it passed, and of that frame's distance in time (frames). On the CPU the warps run in
OpenCV on all channels at once.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from coherence.deflicker import resize
from coherence.flow.ops import occlusion_mask, pixel_grid, resize_flow, warp

_WEIGHT, _OFFSET, _TIME = 3, slice(4, 6), 6
# guards a division by a sum of weights
_TINY = 1e-6
# accumulator channels with the trajectory's geometry
GEOMETRY_CHANNELS = 7
# the occlusion tests' grid, as a fraction of the flow's, unless that makes its short side shorter than this
_OCCLUSION_SCALE, _MIN_OCCLUSION_SIDE = 0.5, 80


def homogeneous(frame: torch.Tensor, *, weight: torch.Tensor | None = None, geometry: bool = False) -> torch.Tensor:
    """A ``(3, H, W)`` float32 frame as the channels-last accumulator of :func:`trajectory_step`: ``(H, W, 4)``
    colour times weight, then the weight (``(H, W)``, 1 where not given), or with ``geometry`` ``(H, W, 7)``
    followed by offset 0 and time 0 (the frame itself is where its trajectories are, now)."""
    extra = GEOMETRY_CHANNELS - 4 if geometry else 0
    if frame.device.type != "cpu":
        ones = torch.ones_like(frame[:1]) if weight is None else weight[None].to(frame)
        return torch.cat((frame * ones, ones, ones.new_zeros(extra, *ones.shape[1:]))).permute(1, 2, 0).contiguous()
    planes = frame.contiguous().numpy()
    if weight is None:
        mass = np.ones_like(planes[0])
    else:
        mass = weight.to(torch.float32).contiguous().numpy()
        planes = planes * mass
    zeros = np.zeros_like(planes[0])
    return torch.from_numpy(cv2.merge([*planes, mass, *[zeros] * extra]))


def normalise(total: torch.Tensor) -> torch.Tensor:
    """The filtered frame ``(3, H, W)`` in [0, 1] of a channels-last accumulator ``(H, W, C)``: colour sums over
    the sum of weights (never 0: frame ``t``'s own weight is in it). On the CPU, a view of a channels-last array,
    which the spatial filters after it read without a copy."""
    if total.device.type != "cpu":
        return total[..., :3].div(total[..., _WEIGHT:_WEIGHT + 1].clamp_min(_TINY)).clamp_(0.0, 1.0) \
            .permute(2, 0, 1).contiguous()
    sums = total.numpy()
    weight = cv2.max(np.ascontiguousarray(sums[..., _WEIGHT]), _TINY)
    colour = cv2.divide(np.ascontiguousarray(sums[..., :3]), cv2.merge([weight] * 3))
    return torch.from_numpy(np.clip(colour, 0.0, 1.0, out=colour)).permute(2, 0, 1)


def support(total: torch.Tensor) -> torch.Tensor:
    """``(H, W)``: the sum of weights of a channels-last accumulator ``(H, W, C)`` (frame ``t``'s own sample weighs
    its precision, 1 for a frame the correction left as it was, times its censored weight)."""
    return total[..., _WEIGHT]


def warp_channels_last(state: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear backward warp of a channels-last ``(H, W, C)`` image by a full-size ``(1, 2, H, W)`` flow (the
    :func:`coherence.flow.ops.warp` convention, border replicated). On the CPU one OpenCV ``remap`` samples all
    channels at once (about three times faster than plane by plane)."""
    if state.device.type != "cpu":
        return warp(state.permute(2, 0, 1)[None], flow)[0].permute(1, 2, 0)
    h, w = state.shape[:2]
    grid = pixel_grid(h, w)
    flow_np = flow[0].numpy()
    out = cv2.remap(state.numpy(), grid[0] + flow_np[0], grid[1] + flow_np[1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return torch.from_numpy(out.reshape(h, w, -1))


def trajectory_weights(flows: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A consecutive pair's flows at the frame size and where each one's trajectories hold: 1 where its alignment
    passes the occlusion tests (:func:`coherence.flow.ops.occlusion_mask`), 0 where it does not (times the filter's
    decay, a neighbour's weight in :func:`trajectory_step`).

    The tests run at most at half the flow's resolution, with the frame's thresholds: DIS medium's finest scale
    is half resolution anyway, and the test costs a quarter of the full-size one.

    Args:
        flows: ``(2, 2, h, w)``: ``flow(a, b)`` then ``flow(b, a)`` on the flow's grid, pixels of that grid.
        size: the frames' ``(H, W)``.

    Returns:
        ``(2, 2, H, W)`` flows in frame pixels, and ``(2, H, W, 1)`` in [0, 1] (bilinear between the tests'
        pixels): where ``a``'s trajectories to ``b`` hold, then ``b``'s to ``a``.
    """
    grid = tuple(flows.shape[-2:])
    if min(grid) * _OCCLUSION_SCALE >= _MIN_OCCLUSION_SIDE:
        grid = (round(grid[0] * _OCCLUSION_SCALE), round(grid[1] * _OCCLUSION_SCALE))
    # area-averaged vectors in pixels of the test's grid (deflicker.resize: OpenCV on the CPU)
    coarse = resize(flows, grid, mode="area").mul_(grid[1] / flows.shape[-1])
    step = size[1] / grid[1]
    invalid = torch.cat((occlusion_mask(coarse[:1], coarse[1:], grid_step=step),
                         occlusion_mask(coarse[1:], coarse[:1], grid_step=step)))
    held = resize(1.0 - invalid, size, mode="bilinear").permute(0, 2, 3, 1)
    return resize_flow(flows, size), held


def trajectory_step(own: torch.Tensor, state: torch.Tensor, to_s: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One step of a normalised exponential filter along the flow: ``own + weight * warp(state)``.

    Accumulators are channels-last (:func:`homogeneous`): colour sums, the sum of weights and, with
    :data:`GEOMETRY_CHANNELS`, the trajectory's geometry. ``state``, the accumulator of a neighbour ``s``, is
    aligned onto the frame by ``to_s = flow(frame, s)`` and weighted per pixel: the filter's decay where the
    alignment can be trusted, 0 where the trajectory breaks. Its offsets, relative to the neighbour's pixels,
    become relative to the frame's by adding ``to_s`` once per unit of weight, and its frames are one step
    further away in time.

    Args:
        own: ``(H, W, C)`` the frame's own :func:`homogeneous` accumulator.
        state: ``(H, W, C)`` float32 accumulator of the neighbour.
        to_s: ``(1, 2, H, W)`` flow from the frame to the neighbour, pixels.
        weight: ``(H, W, 1)`` float in [0, 1): the neighbour accumulator's weight at each pixel.

    Returns:
        ``(H, W, C)`` float32 accumulator of the frame.
    """
    warped = warp_channels_last(state, to_s)
    if warped.shape[-1] == GEOMETRY_CHANNELS:
        mass = warped[..., _WEIGHT:_WEIGHT + 1]
        warped[..., _OFFSET].add_(to_s[0].permute(1, 2, 0) * mass)
        warped[..., _TIME:].add_(mass)
    if warped.device.type != "cpu":
        return warped.mul_(weight).add_(own)
    # OpenCV, with the weight repeated per channel: torch's multiply by a weight broadcast along the last dimension
    # took half as long again
    out = warped.numpy()
    cv2.multiply(out, cv2.merge([np.ascontiguousarray(weight.numpy()[..., 0])] * out.shape[-1]), dst=out)
    cv2.add(out, own.numpy(), dst=out)
    return warped


def trajectory_offset(forward: torch.Tensor, backward: torch.Tensor, own: torch.Tensor, *,
                      limit: float) -> tuple[float, float]:
    """How far frame ``t`` sits from where its trajectories would be at ``t`` if they moved smoothly: one shift
    ``(dx, dy)`` in pixels, to be undone (jitter moves the whole frame; boiling beyond the flow's resolution is
    the colour filter's business).

    Each side's accumulator (:func:`trajectory_step` with geometry; ``forward`` over ``t`` and earlier frames,
    ``backward`` over ``t`` and later ones) gives, per pixel, the weighted mean position of the trajectory on that
    side and its mean distance in time, frame ``t`` itself left out (its position is the jittered one). The
    straight line through the two means, read at time ``t``, is the smoothed position: constant motion gives 0,
    a frame displaced against both sides gives that displacement's opposite. The median over the pixels whose
    trajectories reach both sides is robust to flow failures and to objects that accelerate; it is clamped to
    ``limit`` pixels, beyond which it is not jitter.

    Args:
        forward: ``(H, W, 7)`` the causal accumulator of frame ``t``.
        backward: ``(H, W, 7)`` the anti-causal accumulator of frame ``t``.
        own: ``(H, W, 7)`` frame ``t``'s own accumulator (:func:`homogeneous`), which both sides hold.
        limit: largest shift magnitude, pixels.

    Returns:
        ``(dx, dy)``: frame ``t``'s content belongs ``(dx, dy)`` pixels away from where it is (0 where fewer
        than a tenth of the pixels reach both sides).
    """
    sides = []
    for side in (forward, backward):
        mass = side[..., _WEIGHT] - own[..., _WEIGHT]
        scale = 1.0 / mass.clamp_min(_TINY)[..., None]
        sides.append((mass, side[..., _OFFSET] * scale, side[..., _TIME:] * scale))
    (mass_f, offset_f, time_f), (mass_b, offset_b, time_b) = sides
    both = (mass_f > 1e-3) & (mass_b > 1e-3)
    if float(both.float().mean()) < 0.1:
        return 0.0, 0.0
    offset = ((time_b * offset_f + time_f * offset_b) / (time_f + time_b).clamp_min(_TINY))[both]
    dx, dy = (float(v) for v in offset.median(0).values)
    length = math.hypot(dx, dy)
    scale = min(1.0, limit / length) if length > 0 else 1.0
    return dx * scale, dy * scale
