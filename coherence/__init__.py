"""coherence: make AI-generated video hold together, and measure how well it does.

Frames are ``torch.float32`` tensors in [0, 1], channels first: ``(3, H, W)`` for one frame, ``(T, 3, H, W)`` for
a clip. See ``coherence.flow`` for the optical-flow convention.
"""

from coherence.clip import Clip, parse_fps
from coherence.errors import CoherenceError, ConfigError, DependencyError, InputError, OutputError
from coherence.interpolate import INTERPOLATION_PRESETS, Interpolator, interpolate
from coherence.io import VideoInfo, VideoWriter, probe, read_clip, read_frames, write_clip
from coherence.metrics import ScoreReport, score
from coherence.pipeline import Pipeline, RunResult
from coherence.smooth import Smoother, smooth
from coherence.smooth_presets import SMOOTH_PRESETS

__version__ = "0.1.0"

__all__ = [
    "Clip",
    "INTERPOLATION_PRESETS",
    "CoherenceError",
    "ConfigError",
    "DependencyError",
    "InputError",
    "Interpolator",
    "OutputError",
    "Pipeline",
    "RunResult",
    "SMOOTH_PRESETS",
    "ScoreReport",
    "Smoother",
    "VideoInfo",
    "VideoWriter",
    "interpolate",
    "parse_fps",
    "probe",
    "read_clip",
    "read_frames",
    "score",
    "smooth",
    "write_clip",
]
