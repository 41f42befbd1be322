"""Where the ffmpeg binary comes from and how its failures become one readable sentence.

coherence uses the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships, so ``pip install`` is all a user
needs; ``COHERENCE_FFMPEG`` overrides it (a system build with more codecs, say).
"""

from __future__ import annotations

import functools
import os
import re

from coherence.errors import DependencyError


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg executable to run."""
    override = os.environ.get("COHERENCE_FFMPEG")
    if override:
        return override
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DependencyError("imageio-ffmpeg is not installed: run `pip install imageio-ffmpeg`") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - broken wheel
        raise DependencyError(f"no ffmpeg binary found: {exc}") from exc


_NOISE = re.compile(r"^(\s|Input #|Output #|Stream|Metadata|Duration|Press \[q\]|  )")


def ffmpeg_reason(stderr: bytes | str, default: str = "ffmpeg failed") -> str:
    """The most telling line of ffmpeg's error output (its last non-informational line)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not _NOISE.match(ln)]
    if not lines:
        return default
    reason = lines[-1]
    # ffmpeg prefixes lines with "[demuxer @ 0x...]" and repeats the path; keep the message itself
    reason = re.sub(r"^\[[^\]]*\]\s*", "", reason)
    return reason[:300]
