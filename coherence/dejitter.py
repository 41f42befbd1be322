"""Taking camera-like shake out of smoothed frames (the optional third step of :mod:`coherence.smooth`).

The smoother gives each filtered frame the shift that would put its content on its trajectories' smoothed
positions (:func:`coherence.trajectory.trajectory_offset`). A straight-line trajectory model also reads the
curvature of real motion (a pan that speeds up) as a shift, but that part changes slowly and neighbouring frames
share it, while shake does not: what is left of a frame's shift once the mean shift of the frames within
``span`` on each side (in its scene) is taken away is the shake, and the frame is moved back by it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import torch

from coherence.trajectory import warp_channels_last

# frames on each side whose shifts tell a frame's shake from the curvature of real motion
SHAKE_SPAN = 2


class ShakeQueue:
    """Filtered frames wait here until the shifts of ``span`` frames on each side are known (or their scene or
    the stream has ended), then leave moved back by their shake.

    Args:
        span: neighbours on each side whose shifts tell shake from motion (0: frames leave as they come, unmoved).
    """

    def __init__(self, *, span: int) -> None:
        self.span = span
        # frames not yet released (t, scene, accumulator) and recent frames' shifts (scene, dx, dy)
        self.pending: deque[tuple[int, int, torch.Tensor]] = deque()
        self.shifts: dict[int, tuple[int, float, float]] = {}

    def add(self, t: int, scene: int, accumulator: torch.Tensor, shift: tuple[float, float]) -> None:
        """Queue frame ``t``'s channels-last ``(H, W, C)`` accumulator with its shift ``(dx, dy)`` in pixels (its
        content belongs that far away from where it is); frames come in order."""
        self.shifts[t] = (scene, *shift)
        self.pending.append((t, scene, accumulator))

    def release(self, *, finished: bool) -> Iterator[torch.Tensor]:
        """The queued accumulators ``(H, W, C)`` that can leave, in order, moved back by their shake (sampled at
        ``p - shake``, colour and weight channels only). ``finished``: no more frames will be added."""
        newest = max(self.shifts, default=-1)
        while self.pending:
            t, scene, accumulator = self.pending[0]
            if not (finished or t + self.span <= newest or self.shifts[newest][0] != scene):
                return
            self.pending.popleft()
            if self.span > 0:
                near = [self.shifts[s][1:] for s in range(t - self.span, t + self.span + 1)
                        if s in self.shifts and self.shifts[s][0] == scene]
                dx = self.shifts[t][1] - sum(v[0] for v in near) / len(near)
                dy = self.shifts[t][2] - sum(v[1] for v in near) / len(near)
                if dx or dy:
                    flow = torch.tensor([-dx, -dy], dtype=accumulator.dtype, device=accumulator.device)
                    accumulator = warp_channels_last(accumulator[..., :4].contiguous(),
                                                     flow.view(1, 2, 1, 1).expand(1, 2, *accumulator.shape[:2]))
            for old in [s for s in self.shifts if s < t - self.span]:
                del self.shifts[old]
            yield accumulator
