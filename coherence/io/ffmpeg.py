"""Where the ffmpeg binary comes from and how its failures become one readable sentence.

coherence uses the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships, so ``pip install`` is all a user
needs; ``COHERENCE_FFMPEG`` overrides it (a system build with more codecs, say). Whichever it is, it must be
ffmpeg 5.1 or newer: the reader keeps every decoded frame with ``-fps_mode passthrough``, an option older builds
(imageio-ffmpeg 0.5 ships 4.2) do not know, and newer ones no longer accept the ``-vsync`` that replaced.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess

from coherence.errors import DependencyError

# the oldest ffmpeg with -fps_mode
MIN_VERSION = (5, 1)
_VERSION = re.compile(r"ffmpeg version n?(\d+)\.(\d+)")


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg executable to run, checked once per process (a 15 ms ``ffmpeg -version``).

    Raises:
        DependencyError: no ffmpeg, one that does not run, or one older than :data:`MIN_VERSION`.
    """
    override = os.environ.get("COHERENCE_FFMPEG")
    if override:
        return _checked(override, "COHERENCE_FFMPEG")
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DependencyError("imageio-ffmpeg is not installed: run `pip install imageio-ffmpeg`") from exc
    try:
        path = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - broken wheel
        raise DependencyError(f"no ffmpeg binary found: {exc}") from exc
    return _checked(path, "imageio-ffmpeg")


def _checked(path: str, source: str) -> str:
    """``path`` if it runs and is not older than :data:`MIN_VERSION` (builds without a release number pass)."""
    try:
        banner = subprocess.run([path, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30,
                                check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DependencyError(f"the ffmpeg from {source} ({path}) does not run: {exc}") from exc
    found = _VERSION.search(banner)
    if found and (int(found[1]), int(found[2])) < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        fix = ("point COHERENCE_FFMPEG at a newer build or unset it" if source == "COHERENCE_FFMPEG"
               else "run `pip install -U imageio-ffmpeg`")
        raise DependencyError(f"the ffmpeg from {source} is version {found[1]}.{found[2]}, older than the {wanted} "
                              f"that coherence needs: {fix}")
    return path


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
