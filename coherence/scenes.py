"""Hard scene-cut detection, robust to the brightness and colour flicker of generated video.

Two frames are a cut when both their content and their colour distribution change: the thumbnails'
normalised cross-correlation (insensitive to gain and colour cast, since each channel is standardised) is low
**and** the hue/saturation histograms differ. Large motion lowers the first alone; flicker touches neither.
(In the spirit of PySceneDetect's ``ContentDetector``, which thresholds HSV change alone.)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

THUMB = (36, 64)


def _thumbnail(frame: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` -> ``(3, 36, 64)`` area-averaged thumbnail."""
    return F.interpolate(frame[None].float(), size=THUMB, mode="area")[0]


def _standardised(thumb: torch.Tensor) -> torch.Tensor:
    flat = thumb.flatten(1)
    return (flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-3)


def _hs_histogram(thumb: torch.Tensor, bins: int = 16) -> torch.Tensor:
    """Normalised 2-D hue/saturation histogram of a thumbnail, ``(bins * bins,)``; gain-invariant."""
    r, g, b = thumb.flatten(1)
    cmax, _ = thumb.flatten(1).max(0)
    cmin, _ = thumb.flatten(1).min(0)
    delta = cmax - cmin
    safe = torch.where(delta > 1e-6, delta, torch.ones_like(delta))
    hue = torch.where(cmax == r, ((g - b) / safe) % 6, torch.where(cmax == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 1e-6, hue / 6.0, torch.zeros_like(hue))
    sat = torch.where(cmax > 1e-6, delta / cmax.clamp_min(1e-6), torch.zeros_like(cmax))
    idx = (hue.clamp(0, 0.999) * bins).long() * bins + (sat.clamp(0, 0.999) * bins).long()
    hist = torch.bincount(idx, minlength=bins * bins).float()
    return hist / hist.sum()


class SceneCutDetector:
    """Streaming detector: feed frames in order with :meth:`update`; it answers whether each starts a new scene.

    Args:
        correlation_threshold: thumbnails correlating below this may be a cut (1 = identical).
        histogram_threshold: hue/saturation histograms differing (total variation, 0..1) above this may be a cut.
    """

    def __init__(self, *, correlation_threshold: float = 0.3, histogram_threshold: float = 0.4) -> None:
        self.correlation_threshold = correlation_threshold
        self.histogram_threshold = histogram_threshold
        self._prev: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        """Forget the previous frame."""
        self._prev = None

    def update(self, frame: torch.Tensor) -> bool:
        """Whether ``frame`` (``(3, H, W)`` float in [0, 1]) starts a new scene; the first frame does not."""
        thumb = _thumbnail(frame)
        current = (_standardised(thumb), _hs_histogram(thumb))
        previous, self._prev = self._prev, current
        if previous is None:
            return False
        correlation = float((previous[0] * current[0]).mean())
        histogram_change = float(0.5 * (previous[1] - current[1]).abs().sum())
        return correlation < self.correlation_threshold and histogram_change > self.histogram_threshold


def detect_cuts(frames: Iterable[torch.Tensor], **options: float) -> list[int]:
    """Indices ``t`` of frames that start a new scene (a cut between ``t - 1`` and ``t``).

    Args:
        frames: ``(3, H, W)`` float frames in [0, 1], or a ``(T, 3, H, W)`` tensor.
        options: thresholds of :class:`SceneCutDetector`.
    """
    detector = SceneCutDetector(**options)
    return [t for t, frame in enumerate(frames) if detector.update(frame)]
