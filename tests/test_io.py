"""Video I/O: frame-exact and fps-exact round trips, audio, odd sizes, GIFs, VFR, atomic failure, bad input."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from coherence.clip import Clip
from coherence.errors import InputError, OutputError
from coherence.io import VideoWriter, probe, read_clip, read_frames, write_clip


def _random_clip(t: int = 6, h: int = 33, w: int = 47, fps: str = "30000/1001", seed: int = 0) -> Clip:
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (t, 3, h, w), generator=gen).float() / 255
    return Clip(frames, fps)


@pytest.mark.parametrize("target", ["out.mkv", "frames"])
def test_lossless_round_trip_is_frame_exact(tmp_path: Path, target: str) -> None:
    clip = _random_clip()
    path = tmp_path / target
    write_clip(clip, path, lossless=target.endswith(".mkv"))
    back = read_clip(path, fps=None if target.endswith(".mkv") else "30000/1001")
    assert back.frames.shape == clip.frames.shape
    assert torch.equal(back.frames, clip.frames)
    assert back.fps == Fraction(30000, 1001)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif"])
def test_lossy_formats_keep_count_size_and_rate(tmp_path: Path, suffix: str) -> None:
    # GIF stores delays in whole centiseconds: 20 fps (5 cs) is exact there, 30000/1001 is not
    clip = _random_clip(fps="20" if suffix == ".gif" else "30000/1001")
    smooth = torch.nn.functional.avg_pool2d(clip.frames, 5, 1, 2)  # compressible content
    path = write_clip(Clip(smooth, clip.fps), tmp_path / f"out{suffix}")
    info = probe(path)
    assert (info.width, info.height, info.frames) == (47, 33, 6)  # odd size kept, nothing cropped
    if suffix == ".gif":
        assert info.fps == 20
    else:
        assert info.fps == Fraction(30000, 1001)
        back = read_clip(path)
        assert (back.frames - smooth).abs().mean() < 0.04


def test_audio_is_copied_and_kept_in_sync(clip_with_audio: Path, tmp_path: Path) -> None:
    info = probe(clip_with_audio)
    assert info.has_audio and info.fps == Fraction(30000, 1001) and info.frames == 60
    out = tmp_path / "copy.mp4"
    with VideoWriter(out, fps=info.fps, audio_from=clip_with_audio) as writer:
        for frame in read_frames(info):
            writer.write(frame)
    copied = probe(out)
    assert copied.has_audio and copied.frames == 60 and copied.fps == info.fps


def test_gif_is_not_resampled(slow_gif: Path) -> None:
    info = probe(slow_gif)
    assert info.frames == 8 and info.fps == Fraction(100, 33)
    assert sum(1 for _ in read_frames(info)) == 8  # ffmpeg would duplicate frames up to 25 fps if allowed


def test_shared_gifs_give_exactly_their_real_frames(shared_clips: Path) -> None:
    for gif in sorted((shared_clips / "text2video_zero").glob("*.gif")):
        info = probe(gif)
        assert info.frames == 8
        assert sum(1 for _ in read_frames(info)) == 8


def test_variable_rate_source_reads_real_frames(variable_rate_clip: Path) -> None:
    info = probe(variable_rate_clip)
    assert info.variable_rate
    assert info.frames == 32
    assert sum(1 for _ in read_frames(info)) == 32


def test_failed_write_leaves_nothing_and_keeps_old_output(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous result")
    clip = _random_clip()
    with pytest.raises(RuntimeError):
        with VideoWriter(target, fps=24) as writer:
            writer.write(clip.frames[0])
            raise RuntimeError("the pipeline failed midway")
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="scheduling priorities are POSIX")
def test_encoder_yields_the_cores_to_the_filters(tmp_path: Path) -> None:
    from coherence.io.writer import ENCODER_NICENESS

    with VideoWriter(tmp_path / "o.mp4", fps=24) as writer:
        writer.write(_random_clip().frames[0])
        encoder = writer._proc
        assert encoder is not None
        assert os.getpriority(os.PRIO_PROCESS, encoder.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0)
                                                                    + ENCODER_NICENESS)
    assert probe(tmp_path / "o.mp4").frames == 1


def test_mismatched_frame_size_aborts_cleanly(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is 10x10 but the output is 47x33"):
        with VideoWriter(tmp_path / "o.mp4", fps=24) as writer:
            writer.write(_random_clip().frames[0])
            writer.write(torch.zeros(3, 10, 10))
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_the_input(clip_with_audio: Path) -> None:
    before = clip_with_audio.read_bytes()
    with pytest.raises(OutputError, match="overwrite the input"):
        VideoWriter(clip_with_audio, fps=24, protect=[clip_with_audio])
    assert clip_with_audio.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_bad_files_raise_one_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.mp4"):
        probe(path)


def test_truncated_file_is_refused(clip_with_audio: Path, tmp_path: Path) -> None:
    data = clip_with_audio.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError):
        list(read_frames(cut))


def test_image_folder_with_mixed_modes(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    folder = tmp_path / "imgs"
    folder.mkdir()
    rgb = np.full((12, 16, 3), 200, np.uint8)
    cv2.imwrite(str(folder / "a.png"), rgb)
    cv2.imwrite(str(folder / "b.png"), np.full((12, 16), 100, np.uint8))  # grayscale
    cv2.imwrite(str(folder / "c.png"), np.full((12, 16, 4), 50, np.uint8))  # RGBA
    cv2.imwrite(str(folder / "d.png"), np.full((12, 16, 3), 65535, np.uint16))  # 16-bit
    clip = read_clip(folder, fps=8)
    assert clip.fps == 8 and clip.frames.shape == (4, 3, 12, 16)
    assert torch.allclose(clip.frames[:, 0, 0, 0], torch.tensor([200 / 255, 100 / 255, 50 / 255, 1.0]))
    cv2.imwrite(str(folder / "e.png"), np.zeros((10, 16, 3), np.uint8))
    with pytest.raises(InputError, match="all images must have one size"):
        read_clip(folder)


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images"):
        probe(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "missing.mp4")
