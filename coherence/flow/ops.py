"""The flow convention, warping, occlusion masks and flow resizing: one definition, used everywhere.

Convention: ``flow(a, b)`` is a ``(N, 2, H, W)`` float32 field, x then y, in pixels, such that
``a(p) ≈ b(p + flow(p))``. Hence ``warp(b, flow(a, b))`` aligns ``b`` onto ``a``.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from coherence.errors import InputError

# the occlusion test's thresholds (see occlusion_mask): forward-backward consistency, then motion boundaries
_FB_RELATIVE, _FB_ABSOLUTE = 0.01, 0.5
_EDGE_RELATIVE, _EDGE_ABSOLUTE = 0.01, 0.002

_GRIDS: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}


def base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixel coordinates ``(1, 2, H, W)`` (x then y) as a tensor, cached per size and device: never write into it
    (:func:`pixel_grid` is the NumPy twin for OpenCV)."""
    key = (h, w, device, dtype)
    grid = _GRIDS.get(key)
    if grid is None:
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
        )
        grid = torch.stack((xs, ys))[None]
        if len(_GRIDS) > 32:
            _GRIDS.clear()
        _GRIDS[key] = grid
    return grid


def _check_flow(image: torch.Tensor, flow: torch.Tensor) -> None:
    if image.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise InputError(f"warp expects image (N, C, H, W) and flow (N, 2, H, W), got {tuple(image.shape)} and "
                         f"{tuple(flow.shape)}")
    if image.shape[-2:] != flow.shape[-2:] or image.shape[0] != flow.shape[0]:
        raise InputError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in batch or size")


def warp(image: torch.Tensor, flow: torch.Tensor, *, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``image`` at ``p + flow(p)`` (backward warping).

    With ``flow = flow(a, b)``, ``warp(b, flow)`` is ``b`` aligned onto ``a``. Samples outside the image take
    the nearest border value.

    Args:
        image: ``(N, C, H, W)`` float tensor (any range).
        flow: ``(N, 2, H, W)`` float tensor, pixels, x then y.
        mode: ``"bilinear"``, ``"bicubic"`` or ``"nearest"`` (as in ``torch.nn.functional.grid_sample``).

    Returns:
        ``(N, C, H, W)`` tensor of the same dtype as ``image``.
    """
    _check_flow(image, flow)
    coords = base_grid(*image.shape[-2:], flow.device, flow.dtype) + flow
    return sample_at(image, coords[:, 0], coords[:, 1], mode=mode)


def sample_at(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``image`` at pixel coordinates ``(x, y)``, the nearest border value outside it.

    Args:
        image: ``(N, C, H, W)`` float tensor (any range).
        x: ``(N, h, w)`` column coordinates, pixels of ``image``.
        y: ``(N, h, w)`` row coordinates.
        mode: as in ``torch.nn.functional.grid_sample``.

    Returns:
        ``(N, C, h, w)`` tensor of the same dtype as ``image``.
    """
    h, w = image.shape[-2:]
    # normalise to [-1, 1] with align_corners=True: pixel centres at -1 and 1 for the first and last pixel
    grid = torch.stack((x * (2.0 / max(w - 1, 1)) - 1.0, y * (2.0 / max(h - 1, 1)) - 1.0), dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def out_of_frame(flow: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` float mask, 1 where ``p + flow(p)`` falls outside the image."""
    _, _, h, w = flow.shape
    coords = base_grid(h, w, flow.device, flow.dtype) + flow
    outside = (coords[:, 0] < 0) | (coords[:, 0] > w - 1) | (coords[:, 1] < 0) | (coords[:, 1] > h - 1)
    return outside[:, None].to(flow.dtype)


def _spatial_gradient_sq(flow: torch.Tensor) -> torch.Tensor:
    """Squared magnitude of the spatial gradient of both flow components, summed: ``(N, 1, H, W)``."""
    dx = torch.zeros_like(flow)
    dy = torch.zeros_like(flow)
    dx[..., :, :-1] = flow[..., :, 1:] - flow[..., :, :-1]
    dy[..., :-1, :] = flow[..., 1:, :] - flow[..., :-1, :]
    return (dx.square() + dy.square()).sum(1, keepdim=True)


def occlusion_mask(forward: torch.Tensor, backward: torch.Tensor, *, grid_step: float = 1.0) -> torch.Tensor:
    """Forward-backward consistency and motion-boundary test; 1 where ``p`` is occluded or unreliable.

    The thresholds are those of Sundaram et al. 2010 as used by Ruder et al. 2016 (artistic style transfer for
    videos) and Lai et al. 2018 (learning blind video temporal consistency, ``utils.py``):
    occluded where ``|F + B_w|² > 0.01 (|F|² + |B_w|²) + 0.5`` or ``|∇F|² > 0.01 |F|² + 0.002``, with
    ``B_w = warp(B, F)``, all in pixels of the frame. Points whose target leaves the frame are occluded too.

    Args:
        forward: ``flow(a, b)``, ``(N, 2, H, W)``, defined on ``a``'s grid.
        backward: ``flow(b, a)``, ``(N, 2, H, W)``, defined on ``b``'s grid.
        grid_step: the frame pixels one step of these flows' grid spans (2 for flows of a frame downsampled by 2,
            in pixels of that grid): the thresholds are rescaled so that the test is the frame's test, on a
            coarser grid (where a flow estimated at that resolution loses nothing).

    Returns:
        ``(N, 1, H, W)`` float mask with values in {0, 1}, on ``a``'s grid.
    """
    _check_flow(forward, backward)
    # |F|² in frame pixels is grid_step² |F|² in grid pixels; |∇F|² is the same in both
    fb_absolute, edge_relative = _FB_ABSOLUTE / grid_step**2, _EDGE_RELATIVE * grid_step**2
    if forward.device.type == "cpu" and forward.dtype == torch.float32 and backward.dtype == torch.float32:
        return torch.from_numpy(np.stack([_occlusion_cpu(f.numpy(), b.numpy(), fb_absolute, edge_relative)
                                          for f, b in zip(forward.contiguous(), backward.contiguous(), strict=True)]))
    back_w = warp(backward, forward)
    fb_sq = (forward + back_w).square().sum(1, keepdim=True)
    mag_sq = forward.square().sum(1, keepdim=True) + back_w.square().sum(1, keepdim=True)
    inconsistent = fb_sq > _FB_RELATIVE * mag_sq + fb_absolute
    boundary = _spatial_gradient_sq(forward) > edge_relative * forward.square().sum(1, keepdim=True) + _EDGE_ABSOLUTE
    occluded = inconsistent | boundary | (out_of_frame(forward) > 0)
    return occluded.to(forward.dtype)


@lru_cache(maxsize=8)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(x, y)``, each ``(H, W)`` float32, for OpenCV's ``remap`` (cached per size and read-only:
    add a flow to them, never write into them)."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


def _occlusion_cpu(forward: np.ndarray, backward: np.ndarray, fb_absolute: float, edge_relative: float) -> np.ndarray:
    """:func:`occlusion_mask` of one ``(2, H, W)`` float32 pair with OpenCV and numpy (the same samples as
    ``grid_sample`` with corners aligned and border replication; a few times faster than torch on one core), with
    the thresholds that depend on the grid. Returns ``(1, H, W)`` float32 in {0, 1}."""
    h, w = forward.shape[-2:]
    xs, ys = pixel_grid(h, w)
    map_x, map_y = xs + forward[0], ys + forward[1]
    back_w = cv2.remap(np.dstack((backward[0], backward[1])), map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    fx, fy, bx, by = forward[0], forward[1], back_w[..., 0], back_w[..., 1]
    fwd_sq = fx * fx + fy * fy
    inconsistent = (fx + bx) ** 2 + (fy + by) ** 2 > _FB_RELATIVE * (fwd_sq + bx * bx + by * by) + fb_absolute
    grad_sq = np.zeros((h, w), np.float32)
    grad_sq[:, :-1] += np.square(fx[:, 1:] - fx[:, :-1]) + np.square(fy[:, 1:] - fy[:, :-1])
    grad_sq[:-1, :] += np.square(fx[1:, :] - fx[:-1, :]) + np.square(fy[1:, :] - fy[:-1, :])
    boundary = grad_sq > edge_relative * fwd_sq + _EDGE_ABSOLUTE
    outside = (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
    return (inconsistent | boundary | outside).astype(np.float32)[None]


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(h, w)`` of a ``height x width`` image at ``scale`` of its size, at least 8 pixels a side (the least that a
    reduced-scale flow or motion estimate is computed on)."""
    return max(8, round(height * scale)), max(8, round(width * scale))


def resize_flow(flow: torch.Tensor, size: tuple[int, int], *, align_corners: bool = True) -> torch.Tensor:
    """Resize a flow field to ``size = (H, W)``, scaling the vectors with the grid.

    Args:
        flow: ``(N, 2, h, w)`` in pixels of the ``(h, w)`` grid.
        size: target ``(H, W)``.
        align_corners: ``True``: corner pixel centres coincide (bilinear). ``False``: half-pixel centres, the
            geometry of grids made by area averaging (thumbnails): shrinking averages the vectors (area),
            growing interpolates them (bilinear).

    Returns:
        ``(N, 2, H, W)`` in pixels of the target grid.
    """
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    if align_corners:
        out = F.interpolate(flow, size=size, mode="bilinear", align_corners=True)
        sx, sy = (size[1] - 1) / max(w - 1, 1), (size[0] - 1) / max(h - 1, 1)
    elif size[0] <= h and size[1] <= w:
        out = F.interpolate(flow, size=size, mode="area")
        sx, sy = size[1] / w, size[0] / h
    else:
        out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
        sx, sy = size[1] / w, size[0] / h
    return out * torch.tensor([sx, sy], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)


def compose_flow(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Chain ``flow(a, b)`` and ``flow(b, c)`` into ``flow(a, c) = F_ab + warp(F_bc, F_ab)``.

    Args:
        first: ``flow(a, b)``, ``(N, 2, H, W)``.
        second: ``flow(b, c)``, ``(N, 2, H, W)``.

    Returns:
        ``flow(a, c)``, ``(N, 2, H, W)``.
    """
    return first + warp(second, first)


def flow_magnitude(flow: torch.Tensor) -> torch.Tensor:
    """Per-pixel vector length ``(N, 1, H, W)`` of a ``(N, 2, H, W)`` flow, in pixels."""
    return flow.square().sum(1, keepdim=True).sqrt()
