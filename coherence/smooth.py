"""Flow-guided temporal smoothing: deflicker, then filter along the flow trajectories, streaming.

For each frame ``t`` (all inside its scene; nothing crosses a cut):

1. **Illumination and colour** (:mod:`coherence.deflicker`): coarse flow (:data:`ALIGN_DIS` at 0.4 of the size, on
   frames divided by their own local mean, :func:`~coherence.deflicker.flow_image`, so that the flicker does
   not break brightness constancy) aligns the neighbours within ``window`` seconds on ~64-pixel log
   thumbnails; the occlusion- and outlier-weighted mean log ratio (nearer neighbours weigh more), smoothed
   spatially (finer where the field is strong, :func:`~coherence.deflicker.fitted_field`), is the correction: a
   per-channel gain plus a smooth achromatic local field. Where the window's fields are strong, the correction is
   fitted again against the neighbours' last corrections, and where they are stronger still a third time
   (:data:`~coherence.deflicker.FITS`), which takes out most of what the first fit left
   (:func:`~coherence.deflicker.residual_ratios`, :func:`~coherence.deflicker.refit_share`). The window
   is in seconds as flicker is a matter of time: 8 fps generator output gets a few neighbours, 30 fps footage
   more.
2. **Trajectories** (noise, boiling, dithering, residual flicker): flow between consecutive *corrected* frames
   (:data:`TRAJECTORY_DIS` at full resolution by default, estimated on a background thread) and its forward-backward
   and motion-boundary occlusion tests define where a pixel's trajectory continues. Along it, a causal and an
   anti-causal normalised exponential filter (:func:`coherence.trajectory.trajectory_step`, weight ``decay ** k`` for
   a frame ``k`` steps away, reset wherever the occlusion test fails) are combined so that frame ``t`` counts once.
   The decay is the preset's, raised on a clip noisier than the presets are sized for (:mod:`coherence.noise`,
   measured on the clip's first aligned pairs before the first frame is filtered).
   Each frame's samples weigh the inverse of the noise variance the correction left them
   (:func:`~coherence.deflicker.correction_precision`: a frame brightened by 1.3 had its noise amplified with it). A
   pixel that the input clipped and the correction moved off the clip is a bound, not a sample
   (:mod:`coherence.censoring`): the neighbours that agree with it fill it in. This is the minimiser of the warping
   error along the flow plus a fidelity term to the frame (a first-order Whittaker smoother, whose impulse response
   is that two-sided exponential; the anti-causal half is truncated after ``lookahead`` frames, where ``decay **
   lookahead`` is negligible).
3. **Shake** (only with ``dejitter``, :mod:`coherence.dejitter`): the accumulators also carry where each
   trajectory went, which says how far the frame sits off its smoothed path; the part of that shift its
   neighbours do not share is shake, and the frame is moved back by it. Off by default: generated clips' own
   shake is part of what their fidelity and warping error are measured against.

Frame ``t``'s neighbours are aligned onto it and it carries the largest weight (unless censored, or brightened by
the correction well beyond them), so motion is neither lagged nor averaged away (the output stays nearest its own
input frame); where the flow cannot follow (occlusions, motion boundaries) a pixel has little but its own value to
average, and a bilateral filter stands in for the missing part of its support (:mod:`coherence.fallback`; the
preset's ``spatial`` colour scale). Last, a bilateral filter on the chroma planes alone (:mod:`coherence.chroma`;
the preset's ``chroma`` scale) takes out the chroma noise the temporal average left. Both colour scales grow with
a noise above the presets' (:func:`coherence.noise.noise_scale`). Memory holds ``FITS * radius
+ 3 * lookahead`` frames ahead (each fit of a frame's correction waits for its neighbours' previous fits; the
anti-causal pass runs once per block of ``lookahead`` frames and reads two blocks; one more keeps the flow thread
busy) and one accumulator behind, whatever the clip's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import torch

from coherence.clip import parse_fps
from coherence.deflicker import FITS
from coherence.dejitter import SHAKE_SPAN
from coherence.errors import ConfigError, InputError
from coherence.flow import FlowEstimator, get_flow
from coherence.noise import DECAY_CEILING
from coherence.smooth_presets import SMOOTH_PRESETS
from coherence.smooth_run import SmoothingRun, lookahead

# DIS "medium" with 3 refinement iterations, not 5, takes 9% off the whole process (two flows a frame are half its
# CPU); decay 0.31, not 0.3, kept the clips' figures with it (1 iteration fell below the generated clips' curve), until
# the chroma filter took default's decay back to 0.3
TRAJECTORY_DIS: dict[str, object] = {"preset": "medium", "refinement_iterations": 3}

# The illumination step's coarse alignment (of flow_image at 0.4 of the frame size): DIS medium's finer patch grid
# (its finest scale is half the input's, ultrafast's a quarter) with a patch stride of 4 and no variational
# refinement. Against ultrafast at half size it took bikes with the artefacts x1.5 from 1.27-1.29x to 1.11-1.13x
# the clean clip's warping error, and x2 from 2.08x to 1.69x, for about 1.1 ms more CPU a frame (two flows).
ALIGN_DIS: dict[str, object] = {"preset": "medium", "patch_stride": 4, "refinement_iterations": 0}


class Smoother:
    """The smoothing stage (see the module docstring); implements :class:`coherence.stage.Stage`.

    Args:
        preset: a key of :data:`SMOOTH_PRESETS`.
        strength: 0..1, how much of the correction and of the temporal filter is applied (0 returns the input).
        radius: illumination window in frames on each side, instead of the preset's ``window`` in seconds (0 turns
            the deflicker off).
        flow: flow backend name or instance for the trajectories (default DIS, :data:`TRAJECTORY_DIS`).
        flow_weights: local weights file for a backend that needs weights (RAFT).
        flow_scale: resolution of the trajectory flow, as a fraction of the frame size.
        dejitter: largest shift in pixels that moves a frame onto its trajectories' smoothed positions
            (:func:`coherence.trajectory.trajectory_offset`; 0, the default, leaves positions as they are). For
            camera-like shake: it also takes out the shake that generated clips carry in their content, so their
            warping error measured with their own flow goes up.
        device: torch device for the computation (``"cpu"``, ``"cuda"``); outputs come back on it.
    """

    name = "smooth"

    def __init__(self, *, preset: str = "default", strength: float = 1.0, radius: int | None = None,
                 flow: str | FlowEstimator = "dis", flow_weights: str | Path | None = None, flow_scale: float = 1.0,
                 dejitter: float = 0.0, device: str | torch.device = "cpu") -> None:
        if preset not in SMOOTH_PRESETS:
            raise ConfigError(f"unknown smoothing preset {preset!r}; choose one of {', '.join(SMOOTH_PRESETS)}")
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must be between 0 and 1, got {strength}")
        settings = SMOOTH_PRESETS[preset]
        if radius is not None and not 0 <= radius <= 64:
            raise ConfigError(f"radius must be in 0..64, got {radius}")
        self.settings = settings
        self.fixed_radius = radius
        if not 0.1 <= flow_scale <= 1.0:
            raise ConfigError(f"flow scale must be in [0.1, 1], got {flow_scale}")
        if not 0.0 <= dejitter <= 16.0:
            raise ConfigError(f"dejitter must be between 0 and 16 pixels, got {dejitter}")
        self.strength = strength
        self.flow_scale = flow_scale
        self.dejitter = dejitter
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"unknown device {device!r}") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
        if flow_weights is not None and not (isinstance(flow, str) and flow.startswith("raft")):
            raise ConfigError(f"flow weights apply to the RAFT backends, not to {flow!r}")
        options: dict[str, object] = {"device": self.device, **(TRAJECTORY_DIS if flow == "dis" else {})}
        if flow_weights is not None:
            options["weights_path"] = flow_weights
        self.flow = get_flow(flow, **options) if isinstance(flow, str) else flow
        # the illumination step only needs coarse alignment of thumbnails: ALIGN_DIS on flow_image
        self.align_flow = get_flow("dis", **ALIGN_DIS, device=self.device)
        # the Stage's context on each side, at 30 fps (the illumination window is in seconds)
        shake = SHAKE_SPAN if dejitter else 0
        self.radius = FITS * self.illumination_radius(Fraction(30)) + 3 * self.lookahead + shake

    @property
    def decay(self) -> float:
        """Weight ratio of consecutive frames along a trajectory: the preset's, scaled by ``strength`` (the least a
        clip gets: a noisy one gets more, :mod:`coherence.noise`)."""
        return self.strength * self.settings.decay

    @property
    def lookahead(self) -> int:
        """The most later frames the anti-causal pass reads (for the highest decay a clip's noise can call for)."""
        return lookahead(self.strength * max(self.settings.decay, DECAY_CEILING) if self.settings.decay > 0 else 0.0)

    def illumination_radius(self, fps: Fraction) -> int:
        """Neighbours on each side that the illumination step compares a frame with, at ``fps``."""
        if self.fixed_radius is not None:
            return self.fixed_radius
        return min(64, max(1, round(self.settings.window * float(fps))))

    def output_fps(self, fps: Fraction) -> Fraction:
        """Smoothing keeps the frame rate."""
        return fps

    def process(self, frames: Iterable[torch.Tensor], fps: Fraction) -> Iterator[torch.Tensor]:
        """Smooth a stream of ``(3, H, W)`` float32 frames in [0, 1]; yields as many frames, same size.

        Frames are yielded about ``FITS * illumination_radius(fps) + 3 * lookahead`` frames after they arrive (sooner
        at a cut or at the end).

        Raises:
            InputError: a frame that is not ``(3, H, W)`` or whose size differs from the first.
        """
        if self.strength == 0.0:
            yield from frames
            return
        rate = parse_fps(fps)
        yield from SmoothingRun(self, self.illumination_radius(rate)).process(frames)


def smooth(frames: torch.Tensor, *, fps: str | float | Fraction = 24, **options: object) -> torch.Tensor:
    """Smooth a whole clip in memory (the functional form of :class:`Smoother`).

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        fps: the clip's frame rate (kept; smoothing does not resample).
        options: keyword options of :class:`Smoother` (``preset``, ``strength``, ``radius``, ``flow``...).

    Returns:
        ``(T, 3, H, W)`` float32 in [0, 1] on the smoother's device.

    Raises:
        InputError: frames that are not a non-empty ``(T, 3, H, W)`` tensor.
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"smooth needs a non-empty (T, 3, H, W) tensor of frames, got {shape}")
    smoother = Smoother(**options)  # type: ignore[arg-type]
    out = list(smoother.process(iter(frames), parse_fps(fps)))
    return torch.stack(out).to(smoother.device)
