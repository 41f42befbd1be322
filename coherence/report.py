"""Rendering :class:`~coherence.metrics.ScoreReport` results: JSON, CSV, a markdown table, per-frame plots and
side-by-side comparison videos.

matplotlib is imported only by :func:`plot_per_frame` (an optional dependency, the ``plot`` extra).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from coherence.clip import frame_from_uint8, frame_to_uint8
from coherence.errors import DependencyError, InputError
from coherence.io import VideoWriter
from coherence.metrics.base import ScoreReport

_ARROWS = {"higher": "↑", "lower": "↓", "neutral": ""}


def to_json(report: ScoreReport) -> str:
    """One-line JSON object ``{"path", "frames", "fps", "metrics", "per_frame", ...}`` (``nan`` as ``null``)."""
    return json.dumps(report.to_dict())


def metric_names(reports: Sequence[ScoreReport]) -> list[str]:
    """Metric names in first-seen order across ``reports``."""
    names: list[str] = []
    for report in reports:
        names.extend(n for n in report.metrics if n not in names)
    return names


def to_csv(reports: Sequence[ScoreReport]) -> str:
    """CSV text: one row per clip (``path, frames, fps, duplicates, <metric>...``), empty cells for missing."""
    names = metric_names(reports)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "frames", "fps", "duplicates", *names])
    for r in reports:
        cells = [_cell(r.metrics.get(n, math.nan), digits=6) for n in names]
        writer.writerow([r.path or "", r.frames, str(r.fps), len(r.duplicates), *cells])
    return out.getvalue()


def _cell(value: float, *, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"


def markdown_table(reports: Sequence[ScoreReport], *, label: str = "clip") -> str:
    """A markdown table, one row per clip, one column per metric with ↑/↓ for the better direction.

    Skipped metrics show ``skipped`` (their reasons follow the table); duplicated frames and cuts are counted.
    """
    names = metric_names(reports)
    directions: dict[str, str] = {}
    for r in reports:
        directions.update(r.directions)
    header = [label, "frames", "cuts", "dup", *(f"{n} {_ARROWS.get(directions.get(n, 'neutral'), '')}".strip()
                                                 for n in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    reasons: dict[str, str] = {}
    for r in reports:
        cells = []
        for n in names:
            if n in r.skipped:
                reasons[n] = r.skipped[n]
                cells.append("skipped")
            else:
                cells.append(_cell(r.metrics.get(n, math.nan)) or "–")
        lines.append("| " + " | ".join([Path(r.path).name if r.path else "-", str(r.frames), str(len(r.cuts)),
                                         str(len(r.duplicates)), *cells]) + " |")
    lines.extend(f"\n{name} skipped: {reason}" for name, reason in reasons.items())
    return "\n".join(lines)


def plot_per_frame(reports: Sequence[ScoreReport], path: str | Path, *, metrics: Sequence[str] | None = None,
                   labels: Sequence[str] | None = None) -> Path:
    """Draw each metric's per-frame series, one panel per metric, one line per clip, into an image file.

    Args:
        reports: the clips to overlay (e.g. an input and its processed output).
        path: output image (``.png``, ``.svg``, ``.pdf``).
        metrics: which series (default: every series any report has).
        labels: legend entries (default: the reports' paths).

    Raises:
        DependencyError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DependencyError("plots need matplotlib (pip install 'coherence[plot]')") from exc
    names = list(metrics) if metrics else [n for n in metric_names(reports) if any(n in r.per_frame for r in reports)]
    names = [n for n in names if any(n in r.per_frame for r in reports)]
    if not names:
        raise InputError("there is no per-frame series to plot")
    legend = list(labels) if labels else [Path(r.path).name if r.path else f"clip {i}" for i, r in enumerate(reports)]
    directions: dict[str, str] = {}
    for r in reports:
        directions.update(r.directions)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.2 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        for i, (report, text) in enumerate(zip(reports, legend, strict=True)):
            series = report.per_frame.get(name)
            if series:  # markers keep sparse series (every other frame, cuts left out) visible; one colour per clip
                ax.plot(range(len(series)), [math.nan if x is None else x for x in series], label=text, lw=1.2,
                        marker="o", ms=2.5, color=f"C{i}")
        direction = directions.get(name, "neutral")
        ax.set_ylabel(f"{name} {_ARROWS.get(direction, '')}".strip(), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("frame (pair metrics: first frame of the pair)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _label(frame: np.ndarray, text: str) -> np.ndarray:
    """Draw ``text`` top-left on an ``(H, W, 3)`` uint8 RGB frame, white on a dark band for legibility."""
    if not text:
        return frame
    scale = max(0.35, frame.shape[0] / 720)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    frame = np.ascontiguousarray(frame)
    cv2.rectangle(frame, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), thickness=-1)
    cv2.putText(frame, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def side_by_side(a: torch.Tensor, b: torch.Tensor, *, labels: Sequence[str] = ("", "")) -> torch.Tensor:
    """Two ``(3, H, W)`` float frames in [0, 1] placed left and right, ``b`` resized to ``a``'s height.

    Returns:
        ``(3, H, W_a + W_b')`` float32 in [0, 1], with the labels drawn on each half.
    """
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != 3 or b.shape[0] != 3:
        raise InputError(f"side-by-side needs two (3, H, W) frames, got {tuple(a.shape)} and {tuple(b.shape)}")
    if b.shape[1] != a.shape[1]:
        width = max(1, round(b.shape[2] * a.shape[1] / b.shape[1]))
        b = F.interpolate(b[None].float(), size=(a.shape[1], width), mode="bilinear", align_corners=False)[0]
    halves = [_label(frame_to_uint8(x.clamp(0, 1)), text) for x, text in zip((a, b), labels, strict=True)]
    return frame_from_uint8(np.concatenate(halves, axis=1))


def write_side_by_side(a: Iterable[torch.Tensor], b: Iterable[torch.Tensor], path: str | Path, *,
                       fps: Fraction | float | str, labels: Sequence[str] = ("input", "output")) -> int:
    """Stream two clips into one comparison video, left and right, frame by frame (memory stays constant).

    Args:
        a, b: iterables of ``(3, H, W)`` float32 frames in [0, 1] (or ``(T, 3, H, W)`` tensors); the shorter
            one ends the video.
        path: output video or image folder (any format :class:`~coherence.io.VideoWriter` writes).
        fps: output frame rate.
        labels: text drawn on the left and right halves.

    Returns:
        The number of frames written.
    """
    with VideoWriter(path, fps=fps) as writer:
        count = 0
        for left, right in zip(a, b, strict=False):
            writer.write(side_by_side(left, right, labels=labels))
            count += 1
        if count == 0:
            raise InputError("side-by-side comparison got no frames")
    return count
