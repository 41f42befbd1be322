"""Write frames to a video file or a PNG folder, atomically, with the source's audio copied in.

The output's form follows its path: ``.mp4``/``.mov`` (H.264), ``.mkv`` (H.264 or lossless FFV1), ``.webm``
(VP9), ``.gif`` (palette per clip), ``.avi`` (MJPEG), or a folder of numbered PNGs when the path has no
extension. Frames go to a temporary sibling that is renamed over the target only when everything succeeded.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, cast

import ffmpeg
import numpy as np
import torch

from coherence.clip import Clip, frame_to_uint8, parse_fps
from coherence.errors import ConfigError, OutputError
from coherence.io.ffmpeg import ffmpeg_exe, ffmpeg_reason
from coherence.io.probe import probe

log = logging.getLogger(__name__)

# x264 "faster" at CRF 18 is visually lossless at about half the CPU time of "medium" (measured 640x360: 5.8 vs
# 9.3 core-ms per frame), which matters when the encoder shares two cores with the smoothing itself
X264_PRESET = "faster"

# how much lower the encoder's scheduling priority is than this process's (POSIX niceness)
ENCODER_NICENESS = 10

VIDEO_FORMATS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".gif", ".avi")


def output_kind(path: Path) -> str:
    """``"folder"`` for a path without an extension, else its lower-case suffix; refuses unknown ones."""
    suffix = path.suffix.lower()
    if not suffix:
        return "folder"
    if suffix not in VIDEO_FORMATS:
        raise ConfigError(f"{path}: cannot write {suffix} files; use one of {', '.join(VIDEO_FORMATS)} "
                          "or a path without an extension for a PNG folder")
    return suffix


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _codec_options(kind: str, width: int, height: int, quality: int | None, lossless: bool) -> dict[str, object]:
    """ffmpeg output options for the container ``kind``; odd sizes keep every pixel (4:4:4 chroma)."""
    odd = width % 2 == 1 or height % 2 == 1
    chroma = "yuv444p" if odd else "yuv420p"
    if odd and kind in (".mp4", ".mov", ".m4v", ".mkv", ".webm") and not lossless:
        log.warning("odd frame size %dx%d: writing 4:4:4 chroma so that no pixel is cropped (some players need "
                    "even sizes)", width, height)
    h264 = {"vcodec": "libx264", "pix_fmt": chroma, "crf": 18 if quality is None else quality, "preset": X264_PRESET}
    if kind in (".mp4", ".mov", ".m4v"):
        return {**h264, "movflags": "+faststart"}
    if kind == ".mkv":
        return {"vcodec": "ffv1", "pix_fmt": "bgr0", "level": 3} if lossless else h264
    if kind == ".webm":
        return {"vcodec": "libvpx-vp9", "pix_fmt": chroma, "crf": 30 if quality is None else quality, "b:v": 0,
                "row-mt": 1, "deadline": "good", "cpu-used": 4}
    if kind == ".avi":
        return {"vcodec": "mjpeg", "pix_fmt": "yuvj444p", "q:v": 2 if quality is None else quality}
    return {}


_AUDIO_CODECS = {".mp4": "aac", ".mov": "aac", ".m4v": "aac", ".mkv": "copy", ".webm": "libopus"}


def _yield_to_the_filters(pid: int) -> None:
    """Lower the encoder's scheduling priority by :data:`ENCODER_NICENESS` where the platform allows it.

    The encoder only drains a pipe: at equal priority its threads take cores from the flow and filter threads
    that produce the frames, and everything waits on them (a 600-frame 640×360 smoothing ran 1-7% faster on two
    cores, in alternating runs, with the encoder filling the gaps instead). Where cores are free it runs as fast
    as before.
    """
    if not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) + ENCODER_NICENESS)
    except OSError as exc:  # already gone, or not allowed: a matter of speed only
        log.debug("could not lower the encoder's priority: %s", exc)


class VideoWriter:
    """Streaming, atomic writer. Use as a context manager; frames go in with :meth:`write`.

    Args:
        path: output file (its suffix picks the format) or folder (no suffix: numbered PNGs ``000000.png``...).
        fps: exact output frame rate.
        audio_from: a source whose audio stream is copied into the output (ignored for GIF and folders, and when
            the source has none).
        quality: codec quality (CRF for H.264/VP9, q for MJPEG); default visually lossless.
        lossless: ``.mkv`` only: FFV1, bit-exact RGB.
        protect: paths the output must never replace (the inputs).

    On leaving the ``with`` block normally the output appears at ``path`` in one rename; on an error nothing
    is left behind and any earlier file at ``path`` is untouched.
    """

    def __init__(self, path: str | Path, *, fps: str | float | Fraction, audio_from: str | Path | None = None,
                 quality: int | None = None, lossless: bool = False, protect: Iterable[str | Path] = ()) -> None:
        self.path = Path(path)
        self.fps = parse_fps(fps)
        self.kind = output_kind(self.path)
        if lossless and self.kind != ".mkv":
            raise ConfigError("lossless output needs an .mkv path (FFV1)")
        for p in [*protect, *([audio_from] if audio_from else [])]:
            if _same_file(self.path, Path(p)):
                raise OutputError(f"{self.path}: the output would overwrite the input; choose another path")
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(f"{parent}: the output folder does not exist")
        if not os.access(parent, os.W_OK):
            raise OutputError(f"{parent}: the output folder is not writable")
        if self.kind == "folder" and self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path}: exists and is not a folder")
        if self.kind == "folder" and self.path.is_dir():
            # replace a previous output folder only when it holds nothing but numbered PNGs
            foreign = [p for p in self.path.iterdir() if not (p.suffix == ".png" and p.stem.isdigit())]
            if foreign:
                raise OutputError(f"{self.path}: the folder exists and holds other files ({foreign[0].name}); "
                                  "choose an empty or new folder")
        if self.kind != "folder" and self.path.is_dir():
            raise OutputError(f"{self.path}: is a folder; give a file name with an extension")
        self.audio_from = Path(audio_from) if audio_from else None
        self.quality = quality
        self.lossless = lossless
        token = uuid.uuid4().hex[:8]
        self._tmp = parent / f".{self.path.stem}.partial-{token}{self.path.suffix}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._size: tuple[int, int] | None = None
        self.frames_written = 0

    # -- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: torch.Tensor) -> None:
        """Append one ``(3, H, W)`` float frame in [0, 1]; every frame must have the first one's size."""
        image = frame_to_uint8(frame)
        size = (image.shape[1], image.shape[0])
        if self._size is None:
            self._size = size
            self._start()
        elif size != self._size:
            self.abort()
            raise OutputError(f"frame {self.frames_written} is {size[0]}x{size[1]} but the output is "
                              f"{self._size[0]}x{self._size[1]}")
        if self.kind == "folder":
            self._write_png(image)
        else:
            try:
                cast(IO[bytes], cast(subprocess.Popen, self._proc).stdin).write(image.tobytes())
            except (BrokenPipeError, OSError) as exc:
                reason = self._collect_error()
                self.abort()
                raise OutputError(f"{self.path}: the encoder stopped ({reason})") from exc
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding and move the output into place."""
        if self._size is None:
            self.abort()
            raise OutputError(f"{self.path}: no frames to write")
        if self._proc is not None:
            cast(IO[bytes], self._proc.stdin).close()
            code = self._proc.wait()
            if code != 0:
                reason = self._collect_error()
                self.abort()
                raise OutputError(f"{self.path}: encoding failed ({reason})")
            self._close_stderr()
        self._replace()

    def abort(self) -> None:
        """Stop the encoder and delete the temporary output; the target path is left as it was."""
        if self._proc is not None:
            if self._proc.stdin and not self._proc.stdin.closed:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._close_stderr()
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        elif self._tmp.exists():
            self._tmp.unlink()

    # -- internals -------------------------------------------------------------------------------------------
    def _start(self) -> None:
        width, height = cast(tuple[int, int], self._size)
        if self.kind == "folder":
            self._tmp.mkdir()
            return
        video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",
                             framerate=str(self.fps))
        streams = [video]
        if self.kind == ".gif":
            split = video.split()
            palette = split[1].filter("palettegen", stats_mode="diff")
            streams = [ffmpeg.filter([split[0], palette], "paletteuse", dither="sierra2_4a")]
        options = _codec_options(self.kind, width, height, self.quality, self.lossless)
        audio_codec = _AUDIO_CODECS.get(self.kind)
        if self.audio_from is not None and audio_codec is not None and probe(self.audio_from).has_audio:
            streams.append(ffmpeg.input(str(self.audio_from)).audio)
            options["acodec"] = audio_codec
        out = ffmpeg.output(*streams, str(self._tmp), r=str(self.fps), **options)
        args = ffmpeg.compile(out.global_args("-hide_banner", "-nostdin", "-loglevel", "error").overwrite_output(),
                              cmd=ffmpeg_exe())
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        _yield_to_the_filters(self._proc.pid)

    def _write_png(self, image: np.ndarray) -> None:
        import cv2

        file = self._tmp / f"{self.frames_written:06d}.png"
        if not cv2.imwrite(str(file), image[:, :, ::-1]):
            self.abort()
            raise OutputError(f"{file}: cannot write the image")

    def _collect_error(self) -> str:
        if self._stderr is None:
            return "unknown error"
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._stderr.seek(0)
        return ffmpeg_reason(self._stderr.read(), "the encoder exited")

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _replace(self) -> None:
        if self.kind != "folder":
            os.replace(self._tmp, self.path)
            return
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(self.path, old)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)


def write_clip(clip: Clip, path: str | Path, **options: object) -> Path:
    """Write a whole :class:`Clip`; ``options`` are those of :class:`VideoWriter`. Returns the path."""
    with VideoWriter(path, fps=clip.fps, **options) as writer:  # type: ignore[arg-type]
        for frame in clip.frames:
            writer.write(frame)
    return Path(path)
