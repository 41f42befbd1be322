"""Censored samples: pixels that the input clipped and that the illumination correction moved off the clip.

A frame's gain above 1 drives bright content into clipping (a window, a sky, a white shirt); the illumination
correction of :mod:`coherence.deflicker` then scales the clipped value down to ``1 / gain``, which is not what
the content there is but a lower bound on it. (Content clipped to black has no such twin: the correction scales
``x + 0.02``, so black only leaves black under a gain above 2, and an upper bound near 0 is all but the value.)
Taken as a sample, such a pixel pulls its trajectories towards a value that is too dark, and the flow's occlusion
tests fail around it (clipping breaks brightness constancy), so that its neighbours, which saw the content
unclipped, never reach it. On the degraded real clips of ``benchmarks.smoothing`` a third of the squared error
that smoothing leaves on carphone sat on its 6% of clipped pixels.

So the trajectory filter of :mod:`coherence.smooth` counts a censored pixel's own sample at
:data:`CENSORED_WEIGHT`, and takes a neighbour along the flow there where the neighbour agrees with the bound (at
least as bright, within :data:`_MARGIN`) whatever the occlusion tests said, and not where it contradicts the
bound. It takes it at :data:`CENSORED_DECAY` at least, not at the filter's decay: with its own sample all but
out, a censored pixel's value is a mean of its neighbours', and the nearest frames that saw the content
unclipped may be a few frames away (a gain above 1 for several frames in a row). A pixel that no neighbour
agrees with keeps its own value. Saturated content that the correction leaves alone (or brightens) stays a plain
sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coherence.flow.ops import sample_at

#: the weight of a censored pixel's own sample in the trajectory filter, against 1 for any other pixel
CENSORED_WEIGHT = 0.05
# input values at or above this (the top two 8-bit levels) are clipped; the thumbnails of coherence.deflicker use
# a wider band (CLIP_HIGH): an area average near white is already partly clipped, a single pixel is not
_CLIPPED = 254 / 255
# a clipped pixel is censored once the correction has moved it this far off the clip
_MOVED = 0.02
#: the least weight of an agreeing neighbour at a censored pixel, per frame along the trajectory (on the degraded
#: real clips of benchmarks.smoothing, 0.6 against the default filter's 0.31 took the warping error of bunny from
#: 1.51x to 1.49x the clean clip's and of carphone from 0.97x to 0.95x, +0.04-0.06 dB; 0.75 and 0.9 did about as
#: well on seed 0; the generated clips of benchmarks.smoothing_generated stayed at 62.5% for 35.43 dB)
CENSORED_DECAY = 0.6
# how far a neighbour may sit on the wrong side of the bound and still agree with it: the correction's residual
# error and the noise of both samples
_MARGIN = 0.1


@dataclass(frozen=True)
class Censored:
    """Where a frame's samples are lower bounds on the content rather than values: the pixels ``flat[i] = row *
    width + col``, ``(N,)`` int64, of a frame ``width`` pixels wide (flat indices: one gather reads all the planes
    there, about a third faster than indexing by rows and columns)."""

    flat: torch.Tensor
    width: int

    @property
    def rows(self) -> torch.Tensor:
        return torch.div(self.flat, self.width, rounding_mode="floor")

    @property
    def cols(self) -> torch.Tensor:
        return self.flat % self.width


def find_censored(frame: torch.Tensor, corrected: torch.Tensor) -> Censored | None:
    """The censored pixels of a frame (see the module docstring), or ``None`` where there are none.

    Args:
        frame: ``(3, H, W)`` float32 input in [0, 1].
        corrected: ``(3, H, W)`` the same frame after the illumination correction.
    """
    # clipping is rare: find the pixels clipped in some channel first, then test only those
    flat = (frame.amax(0) >= _CLIPPED).view(-1).nonzero().squeeze(1)
    if flat.numel() == 0:
        return None
    moved = ((_at(frame, flat) >= _CLIPPED) & (_at(corrected, flat) < 1.0 - _MOVED)).any(0)
    if not bool(moved.any()):
        return None
    return Censored(flat[moved], frame.shape[-1])


def _at(image: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """``(C, N)``: a ``(C, H, W)`` image's values at the flat pixel indices ``flat``."""
    return image.reshape(image.shape[0], -1).index_select(1, flat)


def own_weights(censored: Censored, size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` float32: each pixel's own weight in the trajectory filter (:data:`CENSORED_WEIGHT` where
    censored, else 1) for frames of ``size = (H, W)``."""
    weights = torch.ones(size, device=censored.flat.device)
    weights.view(-1)[censored.flat] = CENSORED_WEIGHT
    return weights


def censored_link_weights(weights: torch.Tensor, censored: Censored | None, corrected: torch.Tensor,
                          neighbour: torch.Tensor, to_neighbour: torch.Tensor, *, decay: float) -> torch.Tensor:
    """A frame's weights of a consecutive neighbour along the flow, with its censored pixels' decided by the bound.

    Args:
        weights: ``(H, W, 1)`` the weights from the occlusion tests
            (:func:`coherence.trajectory.trajectory_weights`).
        censored: the frame's censored pixels (``None``: there are none, and ``weights`` are returned as they are).
        corrected: ``(3, H, W)`` float32 corrected frame.
        neighbour: ``(3, H, W)`` float32 corrected neighbour.
        to_neighbour: ``(1, 2, H, W)`` flow from the frame to the neighbour, pixels.
        decay: the filter's weight of a neighbour whose trajectory holds.

    Returns:
        ``(H, W, 1)`` float32: ``max(decay, CENSORED_DECAY)`` (0 if ``decay`` is 0) where a censored pixel's
        aligned neighbour agrees with its bound, 0 where it does not, and ``weights`` elsewhere.
    """
    if censored is None:
        return weights
    flat = censored.flat
    # the neighbour at p + flow(p), bilinear, sampled at the censored pixels only (a few percent of the frame)
    flow = _at(to_neighbour[0], flat)
    x, y = censored.cols + flow[0], censored.rows + flow[1]
    aligned = sample_at(neighbour[None], x.view(1, 1, -1), y.view(1, 1, -1))[0, :, 0]
    agrees = (aligned >= _at(corrected, flat) - _MARGIN).all(0)
    decided = weights.clone(memory_format=torch.contiguous_format)
    # a filter turned off (decay 0) stays off
    taken = max(decay, CENSORED_DECAY) if decay > 0 else 0.0
    decided.view(-1)[flat] = torch.where(agrees, taken, 0.0)
    return decided
