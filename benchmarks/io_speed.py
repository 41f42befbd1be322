"""Decode and encode speed of coherence's video I/O at 640×360, against ffmpeg alone on the same file.

``python -m benchmarks.io_speed [--frames N]``: writes a 640×360 H.264 clip (Big Buck Bunny scaled), then times
(a) ``read_frames`` to float tensors vs ``ffmpeg -f null`` decoding, and (b) ``VideoWriter`` from float frames
vs ffmpeg encoding the same raw frames with the same settings. Ratios are what matter: the machine is noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.cases import real_clip
from benchmarks.ffmpeg_filters import apply_ffmpeg_filter
from coherence.clip import Clip
from coherence.io import read_frames, write_clip
from coherence.io.ffmpeg import ffmpeg_exe


def measure(frames: int) -> dict[str, float]:
    """Frames per second of each operation (see the module docstring)."""
    clip = real_clip("bunny", frames=frames)
    sample = Clip(clip.frames, clip.fps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bunny360.mp4"
        start = time.perf_counter()
        write_clip(sample, path)
        encode = frames / (time.perf_counter() - start)
        _, raw_seconds = apply_ffmpeg_filter(sample.frames, sample.fps, "null")
        start = time.perf_counter()
        count = sum(1 for _ in read_frames(path))
        decode = count / (time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"], check=True)
        ffmpeg_decode = frames / (time.perf_counter() - start)
    return {"frames": frames, "decode_fps": decode, "ffmpeg_decode_fps": ffmpeg_decode,
            "decode_ratio": decode / ffmpeg_decode, "encode_fps": encode, "raw_pipe_fps": frames / raw_seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.frames), indent=2))


if __name__ == "__main__":
    main()
