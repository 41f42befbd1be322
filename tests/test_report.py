"""Report rendering: JSON, CSV, markdown, per-frame plots and the streaming side-by-side writer."""

from __future__ import annotations

import csv
import io
import json
import math
from fractions import Fraction

import pytest
import torch

from coherence.errors import InputError
from coherence.io import read_clip
from coherence.metrics import ScoreReport
from coherence.report import markdown_table, plot_per_frame, side_by_side, to_csv, to_json, write_side_by_side


def _report(path: str, warp: float, flick: float, *, skipped: bool = False) -> ScoreReport:
    return ScoreReport(
        frames=3, fps=Fraction(24000, 1001), path=path,
        metrics={"warping_error": warp, "temporal_flickering": flick, "lpips": math.nan},
        per_frame={"warping_error": [warp, math.nan], "temporal_flickering": [flick, flick]},
        directions={"warping_error": "lower", "temporal_flickering": "higher", "lpips": "lower"},
        skipped={"lpips": "the lpips package is not installed"} if skipped else {}, cuts=[2], duplicates=[1])


def test_json_has_the_documented_fields_and_null_for_nan():
    data = json.loads(to_json(_report("a.mp4", 0.002, 0.97)))
    assert data["path"] == "a.mp4" and data["frames"] == 3 and data["fps"] == "24000/1001"
    assert data["metrics"]["warping_error"] == 0.002 and data["metrics"]["lpips"] is None
    assert data["per_frame"]["warping_error"] == [0.002, None]
    assert data["cuts"] == [2] and data["duplicates"] == [1]


def test_csv_has_one_row_per_clip():
    rows = list(csv.DictReader(io.StringIO(to_csv([_report("a.mp4", 0.002, 0.97), _report("b.mp4", 0.001, 0.99)]))))
    assert [r["path"] for r in rows] == ["a.mp4", "b.mp4"]
    assert float(rows[1]["temporal_flickering"]) == pytest.approx(0.99) and rows[0]["lpips"] == ""
    assert rows[0]["duplicates"] == "1"


def test_markdown_table_marks_directions_and_skips():
    table = markdown_table([_report("dir/a.mp4", 0.002, 0.97, skipped=True)])
    header, rule, row = table.splitlines()[:3]
    assert "warping_error ↓" in header and "temporal_flickering ↑" in header
    assert rule.startswith("|---|") and row.startswith("| a.mp4 | 3 | 1 | 1 |")
    assert "skipped" in row and "lpips skipped: the lpips package is not installed" in table


def test_plot_writes_an_image(tmp_path):
    out = plot_per_frame([_report("a.mp4", 0.002, 0.97), _report("b.mp4", 0.001, 0.99)], tmp_path / "p.png")
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError):
        plot_per_frame([_report("a.mp4", 0.002, 0.97)], tmp_path / "q.png", metrics=["nothing"])


def test_side_by_side_streams_two_clips_with_labels(tmp_path):
    left = torch.zeros(5, 3, 32, 48)
    right = torch.ones(6, 3, 16, 20)  # other size: resized to the left's height; longer: cut to the shorter
    count = write_side_by_side(iter(left), iter(right), tmp_path / "cmp.mp4", fps=12, labels=("in", "out"))
    assert count == 5
    clip = read_clip(tmp_path / "cmp.mp4")
    assert clip.frames.shape == (5, 3, 32, 48 + 40)
    assert clip.frames[:, :, 20:, 10:40].mean() < 0.05 and clip.frames[:, :, 20:, 60:].mean() > 0.95
    labelled = side_by_side(left[0], left[0], labels=("input", ""))
    assert labelled[:, :12, :30].max() > 0.9 and labelled[:, :, 48:].max() == 0  # text only on the left


def test_side_by_side_rejects_empty_input(tmp_path):
    with pytest.raises(InputError):
        write_side_by_side(iter([]), iter([]), tmp_path / "none.mp4", fps=12)
    assert not (tmp_path / "none.mp4").exists()
