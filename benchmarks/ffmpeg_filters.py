"""Run a clip through an ffmpeg filter chain, as a competitor method, and time the whole process."""

from __future__ import annotations

import subprocess
import time
from fractions import Fraction

import numpy as np
import torch

from coherence.errors import CoherenceError
from coherence.io.ffmpeg import ffmpeg_exe, ffmpeg_reason


def apply_ffmpeg_filter(frames: torch.Tensor, fps: Fraction, vf: str, *,
                        out_fps: Fraction | None = None) -> tuple[torch.Tensor, float]:
    """Filter raw frames through ``ffmpeg -vf vf`` (no compression on either side).

    Args:
        frames: ``(T, 3, H, W)`` float32 in [0, 1].
        fps: input frame rate.
        vf: the filter chain, e.g. ``"deflicker=size=5:mode=pm,hqdn3d=0:0:12:12"``.
        out_fps: rate the filter produces (frame-rate filters); only informative, frames are counted.

    Returns:
        ``((T', 3, H, W) float32 frames, wall-clock seconds of the ffmpeg process)``.
    """
    t, _, h, w = frames.shape
    raw = frames.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy().tobytes()
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-framerate", str(fps), "-i", "-", "-vf", vf, "-fps_mode", "passthrough",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, input=raw, capture_output=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise CoherenceError(f"ffmpeg filter {vf!r} failed: {ffmpeg_reason(proc.stderr)}")
    out = np.frombuffer(proc.stdout, np.uint8)
    count = out.size // (h * w * 3)
    result = torch.from_numpy(out[: count * h * w * 3].reshape(count, h, w, 3).copy()).permute(0, 3, 1, 2)
    return result.float().div_(255.0), seconds
