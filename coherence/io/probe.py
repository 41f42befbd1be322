"""Probe a video file or an image folder: size, exact frame rate, frame count, audio, variable rate.

The imageio-ffmpeg wheel ships ``ffmpeg`` but not ``ffprobe``, so timing comes from ffmpeg's ``framecrc``
muxer with stream copy: it lists every packet's timestamp and duration in the stream's exact time base
without decoding, which gives the real frame count (GIFs included) and an exact rational frame rate.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from coherence.clip import DEFAULT_FPS, parse_fps
from coherence.errors import CoherenceError, InputError
from coherence.io.ffmpeg import ffmpeg_exe, ffmpeg_reason

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")

# A probe or decode that takes longer than this is a broken pipe or a pathological file.
PROBE_TIMEOUT_S = 600


@dataclass(frozen=True)
class VideoInfo:
    """What a source holds.

    Attributes:
        path: the file or folder.
        width, height: frame size in pixels.
        fps: exact frame rate (the average rate when ``variable_rate``).
        frames: number of real frames.
        has_audio: whether an audio stream can be copied into outputs.
        variable_rate: frame durations differ (VFR); frames are still read exactly, output is constant-rate.
        codec: video codec name (``"png"`` etc. for image folders).
        has_alpha: the source carries an alpha channel (dropped when read).
        pixel_format: ffmpeg's pixel format name, when known.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    has_audio: bool = False
    variable_rate: bool = False
    codec: str = ""
    has_alpha: bool = False
    pixel_format: str = ""

    @property
    def duration(self) -> float:
        """Seconds, frames / fps."""
        return float(self.frames / self.fps)


def image_files(folder: Path) -> list[Path]:
    """Images in ``folder`` sorted by name (png, jpg, bmp, tif, webp)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _probe_folder(folder: Path, fps: Fraction | None) -> VideoInfo:
    import cv2

    files = image_files(folder)
    if not files:
        raise InputError(f"{folder}: the folder holds no images (png, jpg, bmp, tif, webp)")
    first = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    if first is None:
        raise InputError(f"{files[0]}: not a readable image")
    channels = 1 if first.ndim == 2 else first.shape[2]
    return VideoInfo(path=folder, width=first.shape[1], height=first.shape[0], fps=fps or DEFAULT_FPS,
                     frames=len(files), codec=files[0].suffix.lower().lstrip("."), has_alpha=channels == 4)


_PACKET = re.compile(r"^\s*0,\s*(-?\d+),\s*(-?\d+),\s*(\d+),\s*(\d+)")
_TIMEBASE = re.compile(r"^#tb 0: (\d+)/(\d+)", re.M)
_DIMS = re.compile(r"^#dimensions 0: (\d+)x(\d+)", re.M)
_VIDEO_LINE = re.compile(r"Stream #0:\d+.*?: Video: (\w+)[^,]*,\s*(\w+)")
_AUDIO_LINE = re.compile(r"Stream #0:\d+.*?: Audio: (\w+)")


def _rate_from_packets(pts: list[int], timebase: Fraction, declared: Fraction | None) -> tuple[Fraction, bool]:
    """Exact frame rate and variable-rate flag from packet timestamps in ``timebase`` units.

    Equal steps give the rate exactly. Steps that differ by one tick are a coarse time base (Matroska/WebM store
    milliseconds), not a variable rate: the container's declared rate is used when the mean step agrees with it.
    """
    pts = sorted(pts)
    steps = [b - a for a, b in zip(pts, pts[1:], strict=False) if b > a]
    if not steps:
        return declared or DEFAULT_FPS, False
    lo, hi = min(steps), max(steps)
    if lo == hi:
        return parse_fps(1 / (lo * timebase)), False
    mean_rate = Fraction(len(steps)) / ((pts[-1] - pts[0]) * timebase)
    if hi - lo <= 1:
        if declared is not None and abs(1 / declared - 1 / mean_rate) <= timebase:
            return declared, False
        return parse_fps(mean_rate.limit_denominator(1001)), False
    typical = statistics.median(steps)
    variable = any(abs(s - typical) > max(1, 0.02 * typical) for s in steps)
    if variable:
        return parse_fps(mean_rate.limit_denominator(1001)), True
    return parse_fps(1 / (Fraction(typical).limit_denominator(1_000_000) * timebase)), False


_ALPHA_FORMATS = ("rgba", "bgra", "argb", "abgr", "yuva", "ya", "gbrap", "rgba64")
_DECLARED = re.compile(r"Video: .*?, ([\d.]+) fps")


def _declared_rate(stderr: str) -> Fraction | None:
    match = _DECLARED.search(stderr)
    if match is None:
        return None
    try:
        return parse_fps(match.group(1))
    except CoherenceError:
        return None


def probe(path: str | Path, *, fps: str | float | Fraction | None = None) -> VideoInfo:
    """Describe a video file or an image folder without decoding it.

    Args:
        path: a video file (mp4, mov, mkv, webm, avi, gif...) or a folder of images.
        fps: frame rate of an image folder (default 24); for a video file it overrides the stored rate.

    Raises:
        InputError: missing, empty, unreadable, corrupt or frameless input.
    """
    path = Path(path)
    rate = parse_fps(fps) if fps is not None else None
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return _probe_folder(path, rate)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
           "-f", "framecrc", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"{path}: probing took longer than {PROBE_TIMEOUT_S} s") from exc
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    video = _VIDEO_LINE.search(err)
    if proc.returncode != 0 or video is None:
        if video is None and proc.returncode == 0 or "matches no streams" in err:
            raise InputError(f"{path}: no video stream in this file")
        raise InputError(f"{path}: not a readable video ({ffmpeg_reason(err, 'unknown format')})")
    tb = _TIMEBASE.search(out)
    dims = _DIMS.search(out)
    packets = [m for m in map(_PACKET.match, out.splitlines()) if m]
    if dims is None or tb is None or not packets:
        raise InputError(f"{path}: the video stream has no frames")
    timebase = Fraction(int(tb.group(1)), int(tb.group(2)))
    measured, variable = _rate_from_packets([int(m.group(2)) for m in packets], timebase, _declared_rate(err))
    pix_fmt = video.group(2)
    return VideoInfo(
        path=path,
        width=int(dims.group(1)),
        height=int(dims.group(2)),
        fps=rate or measured,
        frames=len(packets),
        has_audio=_AUDIO_LINE.search(err) is not None,
        variable_rate=variable and rate is None,
        codec=video.group(1),
        # the GIF decoder always reports bgra; its transparency is a palette entry, not real alpha
        has_alpha=video.group(1) != "gif" and pix_fmt.startswith(_ALPHA_FORMATS),
        pixel_format=pix_fmt,
    )
