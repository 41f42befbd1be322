"""OpenCV flow backends that need no weights: DIS (the default) and Farnebäck.

DIS: Kroeger et al. 2016, "Fast Optical Flow using Dense Inverse Search"; OpenCV ``DISOpticalFlow``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from coherence.errors import ConfigError
from coherence.flow.base import check_pair, register_flow
from coherence.flow.ops import resize_flow, scaled_size

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def luma_levels(planes: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float32 RGB in [0, 1] -> ``(H, W)`` float32 luma (BT.601 weights) in levels of 255.

    OpenCV on the colour planes: several times faster than torch on one core, and the flow runs on the CPU anyway.
    """
    red, green, blue = planes
    return cv2.scaleAdd(blue, 0.114 * 255.0, cv2.addWeighted(red, 0.299 * 255.0, green, 0.587 * 255.0, 0.0))


def _to_gray_uint8(batch: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` float in [0, 1] -> ``(N, H, W)`` uint8 luma (:func:`luma_levels`), rounded and saturated."""
    planes = batch.detach().to("cpu", torch.float32).contiguous().numpy()
    gray = np.empty((planes.shape[0], *planes.shape[2:]), np.uint8)
    for index, frame in enumerate(planes):
        # convertScaleAbs rounds and saturates to uint8; luma of [0, 1] colours is never negative
        cv2.convertScaleAbs(luma_levels(frame), dst=gray[index])
    return gray


class _OpenCVFlow(ABC):
    """Shared shell: optional down-scaling, per-pair OpenCV call, upsampling back to the input grid."""

    name = "opencv"
    needs_weights = False

    def __init__(self, *, scale: float = 1.0, device: str | torch.device = "cpu") -> None:
        if not 0.05 <= scale <= 1.0:
            raise ConfigError(f"flow scale must be in [0.05, 1], got {scale}")
        self.scale = scale
        self.device = torch.device(device)

    @abstractmethod
    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow ``(h, w, 2)`` float32 between two ``(h, w)`` uint8 gray images."""

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        check_pair(a, b)
        ga, gb = self._gray(a), self._gray(b)
        return self._to_tensor([self._pair(x, y) for x, y in zip(ga, gb, strict=True)], a)

    def both_ways(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flow(a, b), flow(b, a))`` for two ``(N, 3, H, W)`` batches, each frame converted to gray once."""
        check_pair(a, b)
        ga, gb = self._gray(a), self._gray(b)
        forward = [self._pair(x, y) for x, y in zip(ga, gb, strict=True)]
        backward = [self._pair(y, x) for x, y in zip(ga, gb, strict=True)]
        return self._to_tensor(forward, a), self._to_tensor(backward, a)

    def _gray(self, batch: torch.Tensor) -> np.ndarray:
        """``(N, h, w)`` uint8 luma at the estimation scale."""
        if self.scale < 1.0:
            h, w = batch.shape[-2:]
            batch = F.interpolate(batch, size=scaled_size(h, w, self.scale), mode="area")
        return _to_gray_uint8(batch)

    @staticmethod
    def _to_tensor(flows: list[np.ndarray], like: torch.Tensor) -> torch.Tensor:
        """``(h, w, 2)`` OpenCV flows -> contiguous ``(N, 2, H, W)`` float32 on ``like``'s grid and device."""
        flow = torch.from_numpy(np.stack([np.stack(cv2.split(f)) for f in flows]))
        return resize_flow(flow, tuple(like.shape[-2:])).to(like.device)


@register_flow("dis")
class DISFlow(_OpenCVFlow):
    """OpenCV Dense Inverse Search flow: fast, no weights; the CPU default.

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (quality against speed).
        scale: estimate at this fraction of the input size, then upsample (speed on large frames).
        device: where returned flows live (the estimate itself runs on the CPU).
        patch_stride: override the preset's patch stride in pixels (OpenCV ``setPatchStride``), if given.
        refinement_iterations: override the preset's variational refinement iterations per scale (OpenCV
            ``setVariationalRefinementIterations``), if given.
    """

    name = "dis"

    def __init__(self, *, preset: str = "medium", scale: float = 1.0, device: str | torch.device = "cpu",
                 patch_stride: int | None = None, refinement_iterations: int | None = None) -> None:
        super().__init__(scale=scale, device=device)
        if preset not in _DIS_PRESETS:
            raise ConfigError(f"unknown DIS preset {preset!r}; choose one of {', '.join(_DIS_PRESETS)}")
        if patch_stride is not None and patch_stride < 1 or refinement_iterations is not None \
                and refinement_iterations < 0:
            raise ConfigError(f"DIS needs patch_stride >= 1 and refinement_iterations >= 0, got {patch_stride} "
                              f"and {refinement_iterations}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
        if patch_stride is not None:
            self._dis.setPatchStride(patch_stride)
        if refinement_iterations is not None:
            self._dis.setVariationalRefinementIterations(refinement_iterations)
        # OpenCV's DIS reads out of bounds (the process dies) on an image whose short side is under one patch at
        # the finest scale of its pyramid: 32 pixels for ultrafast (8-pixel patches at 1/4), 16 for medium (at
        # 1/2). OpenCV also lowers the finest scale in place for an image with few pyramid levels, which would
        # carry over to the next, larger image: it is set again before every estimate.
        self._finest_scale = self._dis.getFinestScale()
        self._min_side = self._dis.getPatchSize() * 2**self._finest_scale

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape
        self._dis.setFinestScale(self._finest_scale)
        if h >= self._min_side and w >= self._min_side:
            return self._dis.calc(a, b, None)
        # images with a side under what the patch pyramid needs (small frames, thin strips, flows of small frames
        # at a reduced scale) are padded by edge replication and the flow cropped back
        pad_y, pad_x = max(0, self._min_side - h), max(0, self._min_side - w)
        a_p, b_p = (cv2.copyMakeBorder(x, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE) for x in (a, b))
        return np.ascontiguousarray(self._dis.calc(a_p, b_p, None)[:h, :w])


@register_flow("farneback")
class FarnebackFlow(_OpenCVFlow):
    """OpenCV Farnebäck polynomial-expansion flow (Farnebäck 2003): slower than DIS, smooth fields."""

    name = "farneback"

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.1, 0)
