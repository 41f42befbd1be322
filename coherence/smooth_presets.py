"""The smoothing presets: what each of ``light``, ``default`` and ``strong`` fixes in :mod:`coherence.smooth`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SmoothSettings:
    """What a preset fixes.

    Attributes:
        window: illumination window in seconds on each side: the neighbours compared with the frame on
            thumbnails are those within it (at least one), a neighbour ``d`` frames away weighing
            ``1 - d / (radius + 1)`` (:func:`coherence.deflicker.window_weights`).
        field_scale: spatial scale of the illumination correction, as a fraction of the frame's long side: the
            coarsest, for a weak field; a strong one is fitted finer (:func:`coherence.deflicker.fitted_field`).
        decay: weight ratio of consecutive frames along a trajectory: frame ``t ± k`` weighs ``decay ** k``
            against frame ``t``'s 1 (0 turns the temporal filter off); a clip noisier than the presets are sized
            for gets more (:mod:`coherence.noise`). Per frame, not per second: how far a
            trajectory can be trusted depends on how well the flow follows it from frame to frame, which a
            higher rate does not make longer (0.67 per frame at 24 fps blurred small synthetic clips by 6 dB).
        spatial: colour scale, in levels of 255, of the bilateral filter that stands in where a pixel's
            trajectories give it less than an unbroken trajectory's weight (:mod:`coherence.fallback`; 0 turns
            it off).
        chroma: colour scale, in levels of 255, of the bilateral filter on the output's chroma planes
            (:mod:`coherence.chroma`; 0 turns it off).
    """

    window: float
    field_scale: float
    decay: float
    spatial: float
    chroma: float


# windows 1.6x the equal-weight ones they replaced (0.15, 0.25, 0.4 s), see coherence.deflicker.window_weights
SMOOTH_PRESETS: dict[str, SmoothSettings] = {
    "light": SmoothSettings(window=0.25, field_scale=0.06, decay=0.2, spatial=10.0, chroma=3.0),
    "default": SmoothSettings(window=0.4, field_scale=0.05, decay=0.3, spatial=16.0, chroma=4.0),
    "strong": SmoothSettings(window=0.65, field_scale=0.05, decay=0.6, spatial=22.0, chroma=6.0),
}
