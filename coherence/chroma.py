"""Chroma denoising: an edge-preserving filter on a frame's colour-difference planes, luma left as it is.

Noise drawn independently in R, G and B (a camera sensor's, and the benchmarks' model of a generator's) puts two
thirds of its energy into chroma, where a frame's content has little detail: a colour edge is many levels high,
the noise a few. A bilateral filter on Cb and Cr (BT.601; the filter of :mod:`coherence.fallback` over the nearest
pixels, with a colour scale of a few levels) takes that noise out everywhere and keeps the colour edges; the luma
plane, which holds the texture, is not touched. It runs after the trajectory filter, on what the temporal average
left.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from coherence.fallback import BILATERAL_SIGMA_SPACE, bilateral_torch

# the filter's diameter, pixels: OpenCV's 3 is the centre and its 4 nearest neighbours; 5 (the fallback's) removed a
# little more chroma noise from the degraded clips, a little more of the generated clips' own chroma, and took twice
# as long
_DIAMETER = 3


def denoise_chroma_torch(frame: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`denoise_chroma` on any device (used off the CPU): kornia's colour conversions and
    :func:`~coherence.fallback.bilateral_torch`."""
    import kornia  # here, not at import: see bilateral_torch

    ycbcr = kornia.color.rgb_to_ycbcr(frame[None])[0]
    ycbcr[1:] = bilateral_torch(ycbcr[1:], sigma, diameter=_DIAMETER)
    return kornia.color.ycbcr_to_rgb(ycbcr[None])[0].clamp_(0.0, 1.0)


def denoise_chroma(frame: torch.Tensor, sigma: float) -> torch.Tensor:
    """Bilateral-filter the chroma planes of a frame (colour distance: the sum of the Cb and Cr differences; OpenCV's
    filter on the CPU, else :func:`denoise_chroma_torch`).

    Args:
        frame: ``(3, H, W)`` float32 RGB in [0, 1].
        sigma: the filter's colour scale in levels of 255 (0 returns ``frame``).

    Returns:
        ``(3, H, W)`` float32 in [0, 1] on ``frame``'s device: the same luma, filtered chroma (on the CPU, a view
        of a channels-last array, which the next channels-last step reads without a copy).
    """
    if sigma <= 0:
        return frame
    if frame.device.type != "cpu":
        return denoise_chroma_torch(frame, sigma)
    # OpenCV's filter takes one or three channels: the luma plane goes out as a constant, which adds no distance
    ycrcb = cv2.cvtColor(np.ascontiguousarray(frame.detach().permute(1, 2, 0).numpy()), cv2.COLOR_RGB2YCrCb)
    luma = ycrcb[..., 0].copy()
    ycrcb[..., 0] = 0.0
    ycrcb = cv2.bilateralFilter(ycrcb, _DIAMETER, sigma / 255.0, BILATERAL_SIGMA_SPACE)
    ycrcb[..., 0] = luma
    rgb = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
    return torch.from_numpy(np.clip(rgb, 0.0, 1.0, out=rgb)).permute(2, 0, 1)
