"""Filtering along flow trajectories: the accumulators and the one step of :mod:`coherence.smooth`'s temporal
filter.

An accumulator is a channels-last ``(H, W, 4)`` float32 tensor: colour sums, then the sum of weights, so that a
normalised filter is a sum of accumulators divided by its last channel. On the CPU the warps run in OpenCV on
all four channels at once.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from coherence.flow.ops import pixel_grid, warp


def homogeneous(frame: torch.Tensor) -> torch.Tensor:
    """A ``(3, H, W)`` float32 frame as the channels-last accumulator ``(H, W, 4)`` of :func:`trajectory_step`:
    colour, then weight 1."""
    if frame.device.type != "cpu":
        return torch.cat((frame, torch.ones_like(frame[:1]))).permute(1, 2, 0).contiguous()
    planes = frame.contiguous().numpy()
    return torch.from_numpy(cv2.merge([*planes, np.ones_like(planes[0])]))


def normalise(total: torch.Tensor) -> torch.Tensor:
    """The filtered frame ``(3, H, W)`` in [0, 1] of a channels-last accumulator ``(H, W, 4)``: colour sums over
    the sum of weights (at least 1, frame ``t``'s own)."""
    if total.device.type != "cpu":
        return total[..., :3].div(total[..., 3:].clamp_min(1.0)).clamp_(0.0, 1.0).permute(2, 0, 1).contiguous()
    *colour, weight = cv2.split(total.numpy())
    weight = cv2.max(weight, 1.0)
    planes = np.stack([cv2.divide(plane, weight) for plane in colour])
    return torch.from_numpy(np.clip(planes, 0.0, 1.0, out=planes))


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


def trajectory_step(own: torch.Tensor, state: torch.Tensor, to_s: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One step of a normalised exponential filter along the flow: ``own + weight * warp(state)``.

    Accumulators are channels-last ``(H, W, 4)``: colour sums, then the sum of weights (:func:`homogeneous`).
    ``state``, the accumulator of a neighbour ``s``, is aligned onto the frame by ``to_s = flow(frame, s)`` and
    weighted per pixel: the filter's decay where the alignment can be trusted, 0 where the trajectory breaks.

    Args:
        own: ``(H, W, 4)`` the frame's own :func:`homogeneous` accumulator.
        state: ``(H, W, 4)`` float32 accumulator of the neighbour.
        to_s: ``(1, 2, H, W)`` flow from the frame to the neighbour, pixels.
        weight: ``(H, W, 1)`` float in [0, 1): the neighbour accumulator's weight at each pixel.

    Returns:
        ``(H, W, 4)`` float32 accumulator of the frame.
    """
    return warp_channels_last(state, to_s).mul_(weight).add_(own)
