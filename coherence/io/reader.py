"""Stream frames out of a video file or an image folder, one at a time, with bounded memory."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO, cast

import numpy as np
import torch

from coherence.clip import Clip, frame_from_uint8
from coherence.errors import InputError
from coherence.io.ffmpeg import ffmpeg_exe, ffmpeg_reason
from coherence.io.probe import VideoInfo, image_files, probe

log = logging.getLogger(__name__)

# Frames larger than this are refused before decoding: one float32 frame of 8K is already ~400 MB.
MAX_PIXELS = 7680 * 4320


def _check_size(info: VideoInfo, max_pixels: int) -> None:
    if info.width * info.height > max_pixels:
        raise InputError(f"{info.path}: {info.width}x{info.height} is larger than the {max_pixels} pixels a frame may "
                         "have; downscale it first (for example `coherence convert IN -o OUT --max-size 1920`)")


def _image_to_frame(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """Read one image (gray, RGB, RGBA, 8 or 16 bit) as a ``(3, H, W)`` float frame in [0, 1]."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    if img.shape[1] != size[0] or img.shape[0] != size[1]:
        raise InputError(f"{path}: image is {img.shape[1]}x{img.shape[0]} but the first image of the folder is "
                         f"{size[0]}x{size[1]}; all images must have one size")
    if img.ndim == 2:
        img = img[:, :, None].repeat(3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    img = img[:, :, ::-1]  # BGR -> RGB
    if img.dtype == np.uint8:
        return frame_from_uint8(img)
    if img.dtype == np.uint16:
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(65535.0)
    if img.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().clamp_(0, 1)
    raise InputError(f"{path}: unsupported pixel type {img.dtype}")


def _read_folder(info: VideoInfo) -> Iterator[torch.Tensor]:
    for file in image_files(info.path):
        yield _image_to_frame(file, (info.width, info.height))


def _read_exact(stream: IO[bytes], size: int) -> bytearray | None:
    """Read exactly ``size`` bytes from a pipe (which may return short reads); None at end of stream."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = stream.readinto(view[got:])
        if not n:
            return None
        got += n
    return buf


def _read_video(info: VideoInfo) -> Iterator[torch.Tensor]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(info.path),
           "-map", "0:v:0", "-an", "-sn", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    frame_bytes = info.width * info.height * 3
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        stdout = cast(IO[bytes], proc.stdout)
        count = 0
        try:
            while True:
                buf = _read_exact(stdout, frame_bytes)
                if buf is None:
                    break
                count += 1
                yield frame_from_uint8(np.frombuffer(buf, np.uint8).reshape(info.height, info.width, 3))
        finally:
            stdout.close()
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
        err.seek(0)
        message = err.read()
    if code != 0 and count == 0:
        raise InputError(f"{info.path}: cannot decode the video ({ffmpeg_reason(message)})")
    if count == 0:
        raise InputError(f"{info.path}: the video decodes to no frames")
    if message.strip():
        log.warning("%s: decoded %d frames with errors (%s)", info.path, count, ffmpeg_reason(message))


def read_frames(source: str | Path | VideoInfo, *, fps: str | float | Fraction | None = None,
                max_pixels: int = MAX_PIXELS) -> Iterator[torch.Tensor]:
    """Yield the frames of a video file or image folder one at a time.

    Every real frame is yielded once: GIF and variable-rate sources are not resampled to a constant rate.

    Args:
        source: a path, or the :class:`VideoInfo` that :func:`probe` returned for it.
        fps: rate of an image folder (default 24); ignored by the frames themselves.
        max_pixels: refuse frames larger than this.

    Yields:
        ``(3, H, W)`` float32 frames in [0, 1].

    Raises:
        InputError: unreadable input, images of different sizes, too large frames.
    """
    info = source if isinstance(source, VideoInfo) else probe(source, fps=fps)
    _check_size(info, max_pixels)
    if info.has_alpha:
        log.warning("%s: the alpha channel is dropped (frames are read as RGB)", info.path)
    if info.path.is_dir():
        yield from _read_folder(info)
    else:
        yield from _read_video(info)


def read_clip(source: str | Path, *, fps: str | float | Fraction | None = None, max_frames: int | None = None,
              max_pixels: int = MAX_PIXELS) -> Clip:
    """Read a whole (short) clip into memory.

    Args:
        source: video file or image folder.
        fps: rate of an image folder, or an override for a file.
        max_frames: keep only the first frames.

    Returns:
        A :class:`Clip` with ``(T, 3, H, W)`` float32 frames in [0, 1] and the source's exact fps; its metadata
        holds ``source`` (the path) and ``info`` (the :class:`VideoInfo`).
    """
    info = probe(source, fps=fps)
    frames = []
    for frame in read_frames(info, max_pixels=max_pixels):
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    return Clip(torch.stack(frames), info.fps, {"source": str(info.path), "info": info})
