"""A pipeline of streaming stages from a source to a sink; the Python API that the CLI mirrors.

``Pipeline([Smoother(...), Interpolator(...)]).run("in.mp4", "out.mp4")`` reads frames one at a time, passes
them through every stage (each keeping only its window) and writes them atomically with the input's audio.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from coherence.clip import Clip, parse_fps
from coherence.io import VideoInfo, VideoWriter, probe, read_frames
from coherence.stage import Stage, check_frame_count, resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a pipeline run did: paths, frame counts, exact rates and wall-clock seconds."""

    source: Path
    output: Path
    frames_in: int
    frames_out: int
    fps_in: Fraction
    fps_out: Fraction
    seconds: float


@dataclass
class Pipeline:
    """An ordered list of :class:`~coherence.stage.Stage` objects applied as one stream.

    Args:
        stages: applied in order; an empty pipeline copies frames through (a conversion).
    """

    stages: Sequence[Stage] = field(default_factory=list)

    @classmethod
    def from_options(cls, *, smooth: bool = False, smooth_preset: str = "default", strength: float = 1.0,
                     radius: int | None = None, factor: int | None = None, to_fps: str | Fraction | None = None,
                     generator: str | None = None, flow: str = "dis", flow_weights: str | Path | None = None,
                     dejitter: float = 0.0, device: str = "cpu") -> Pipeline:
        """The pipeline that the CLI's options describe: smoothing, then interpolation.

        Args:
            smooth: run a :class:`~coherence.smooth.Smoother` with ``smooth_preset``, ``strength``, ``radius``,
                ``dejitter``.
            factor, to_fps: then interpolate by an integer factor or to a rate (at most one of them).
            generator: a generator preset of :data:`~coherence.interpolate.INTERPOLATION_PRESETS`: its target rate
                when neither ``factor`` nor ``to_fps`` is given, and its smoothing strength when ``smooth`` is off.
            flow, flow_weights, device: the flow backend (and its weights file) and the torch device of every stage
                (``"auto"``: CUDA when available).
        """
        device = str(resolve_device(device))
        if generator is not None:
            from coherence.interpolate import get_preset

            preset = get_preset(generator)
            if factor is None and to_fps is None:
                to_fps = preset.target_fps
            if not smooth and preset.smoothing > 0:
                smooth, strength = True, preset.smoothing
        stages: list[Stage] = []
        if smooth:
            from coherence.smooth import Smoother

            stages.append(Smoother(preset=smooth_preset, strength=strength, radius=radius, flow=flow,
                                   flow_weights=flow_weights, dejitter=dejitter, device=device))
        if factor is not None or to_fps is not None:
            from coherence.interpolate import Interpolator

            stages.append(Interpolator(factor=factor, to_fps=to_fps, flow=flow, device=device))
        return cls(stages)

    def output_fps(self, fps: Fraction) -> Fraction:
        """Output rate for an input at ``fps``."""
        for stage in self.stages:
            fps = stage.output_fps(fps)
        return fps

    def expected_frames(self, frames: int, fps: Fraction) -> int:
        """Approximate output frame count for ``frames`` input frames at ``fps`` (for progress bars)."""
        return max(1, round(frames * self.output_fps(fps) / fps))

    def process(self, frames: Iterable[torch.Tensor], fps: Fraction) -> Iterator[torch.Tensor]:
        """Stream ``(3, H, W)`` float32 frames in [0, 1] at ``fps`` through every stage."""
        stream: Iterable[torch.Tensor] = frames
        for stage in self.stages:
            stream = stage.process(stream, fps)
            fps = stage.output_fps(fps)
        yield from stream

    def process_clip(self, clip: Clip) -> Clip:
        """Run a whole in-memory clip; returns a new clip at the output rate."""
        out = list(self.process(iter(clip.frames), clip.fps))
        return Clip(torch.stack(out), self.output_fps(clip.fps), dict(clip.metadata))

    def run(self, source: str | Path | VideoInfo, output: str | Path, *, fps: str | float | Fraction | None = None,
            quality: int | None = None, lossless: bool = False,
            on_frame: Callable[[int], None] | None = None) -> RunResult:
        """Read ``source``, process it and write ``output`` (format from its suffix; a folder without one).

        Args:
            source: video file or image folder (or its :class:`VideoInfo`).
            output: destination; never the source itself.
            fps: frame rate of an image-folder source (or an override for a file).
            quality, lossless: encoder options of :class:`~coherence.io.VideoWriter`.
            on_frame: called with the running count after each written frame (progress display).

        Returns:
            A :class:`RunResult`.
        """
        start = time.perf_counter()
        info = source if isinstance(source, VideoInfo) else probe(source, fps=fps)
        fps_in = parse_fps(fps) if fps is not None else info.fps
        fps_out = self.output_fps(fps_in)
        check_frame_count(self.stages, info.frames, source=info.path)
        if info.variable_rate:
            log.warning("%s: the frame rate is variable; every frame is kept and the output is written at a "
                        "constant %s fps (its average)", info.path, fps_out)
        audio = info.path if info.path.is_file() else None
        frames_in = 0

        def counted() -> Iterator[torch.Tensor]:
            nonlocal frames_in
            for frame in read_frames(info):
                frames_in += 1
                yield frame

        with VideoWriter(output, fps=fps_out, audio_from=audio, quality=quality, lossless=lossless,
                         protect=[info.path]) as writer:
            for frame in self.process(counted(), fps_in):
                writer.write(frame)
                if on_frame is not None:
                    on_frame(writer.frames_written)
        return RunResult(info.path, Path(output), frames_in, writer.frames_written, fps_in, fps_out,
                         time.perf_counter() - start)
