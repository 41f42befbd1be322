"""Hostile input across the command line: one clear line and a documented non-zero exit code, no traceback and
no partial output; or a correct result (with a warning) where the input can be handled.

``tests/test_cli.py`` covers missing, empty and non-video files, output equal to input and a missing output folder
for ``convert``; here the same cases reach the other commands, plus truncated files, one-frame clips, mismatched
references, mixed image sizes, alpha/gray/16-bit images, variable frame rate and huge frames. Commands that do not
exist yet in this checkout are skipped.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_media

import cli
from coherence.io import probe

Argv = Callable[[str, str], list[str]]

# how each command is called on an input and an output path
COMMANDS: dict[str, Argv] = {
    "info": lambda i, o: ["info", i],
    "convert": lambda i, o: ["convert", i, "-o", o],
    "score": lambda i, o: ["score", i],
    "smooth": lambda i, o: ["smooth", i, "-o", o],
    "interpolate": lambda i, o: ["interpolate", i, "-o", o, "--factor", "2"],
}
TEMPORAL = ("score", "smooth", "interpolate")


def argv_for(command: str, source: Path, output: Path) -> list[str]:
    """The command line of ``command``, or a skip when this checkout does not have the command yet."""
    if not hasattr(cli, f"_cmd_{command}"):
        pytest.skip(f"no `coherence {command}` in this checkout")
    return COMMANDS[command](str(source), str(output))


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """Run the command line in this process; returns the exit code and stderr."""
    code = cli.main(["--quiet", *argv])
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, expected: int, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == expected, err
    assert len(lines) == 1 and lines[0].startswith("coherence: error:") and fragment in lines[0], err


def assert_no_output(folder: Path, output: Path) -> None:
    assert not output.exists()
    assert not [p.name for p in folder.iterdir() if ".partial-" in p.name]


def _clip(path: Path, *, frames: int, size: str = "64x48") -> Path:
    return make_media(path, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=12", "-frames:v", str(frames),
                      "-c:v", "libx264", "-pix_fmt", "yuv420p")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    good = _clip(root / "good.mp4", frames=12)
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n" * 20)
    mixed = root / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "000.png"), np.full((48, 64, 3), 100, np.uint8))
    cv2.imwrite(str(mixed / "001.png"), np.full((50, 64, 3), 100, np.uint8))
    huge = root / "huge"
    huge.mkdir()
    cv2.imwrite(str(huge / "000.png"), np.zeros((4400, 7800, 3), np.uint8))
    shutil.copy(huge / "000.png", huge / "001.png")
    return {"good": good, "one": _clip(root / "one.mp4", frames=1), "truncated": root / "truncated.mp4",
            "empty": root / "empty.mp4", "text": root / "text.mp4", "missing": root / "missing.mp4",
            "other_size": _clip(root / "other.mp4", frames=12, size="80x48"), "mixed": mixed, "huge": huge}


@pytest.mark.parametrize("command", ["info", "score", "smooth", "interpolate"])
@pytest.mark.parametrize(("case", "fragment"), [("missing", "no such file"), ("empty", "empty"),
                                                ("text", "not a readable video"), ("truncated", "")])
def test_bad_files_are_refused_by_every_command(media: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], command: str, case: str,
                                                fragment: str) -> None:
    out = tmp_path / "out.mp4"
    code, err = run(capsys, argv_for(command, media[case], out))
    assert_refused(code, err, 2, fragment or str(media[case]))
    assert_no_output(tmp_path, out)


def test_truncated_file_is_refused_by_convert(media: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, argv_for("convert", media["truncated"], tmp_path / "o.mp4"))
    assert_refused(code, err, 2, "truncated.mp4")
    assert_no_output(tmp_path, tmp_path / "o.mp4")


@pytest.mark.parametrize("command", TEMPORAL)
def test_one_frame_clip_is_refused_by_temporal_commands(media: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, err = run(capsys, argv_for(command, media["one"], tmp_path / "o.mp4"))
    assert_refused(code, err, 2, "at least 2 frames")
    assert_no_output(tmp_path, tmp_path / "o.mp4")


def test_one_frame_clip_converts_and_describes(media: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, argv_for("info", media["one"], tmp_path))[0] == 0
    assert run(capsys, argv_for("convert", media["one"], tmp_path / "o.mkv"))[0] == 0
    assert probe(tmp_path / "o.mkv").frames == 1


def test_reference_of_another_size_is_refused(media: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = argv_for("score", media["good"], tmp_path) + ["--reference", str(media["other_size"])]
    code, err = run(capsys, argv)
    assert_refused(code, err, 2, "reference")


@pytest.mark.parametrize("command", ["convert", "score", "smooth", "interpolate"])
def test_images_of_different_sizes_are_refused(media: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, err = run(capsys, argv_for(command, media["mixed"], tmp_path / "o.mp4"))
    assert_refused(code, err, 2, "all images must have one size")
    assert_no_output(tmp_path, tmp_path / "o.mp4")


@pytest.mark.parametrize("command", ["convert", "score", "smooth", "interpolate"])
def test_huge_frames_are_refused_before_decoding(media: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, err = run(capsys, argv_for(command, media["huge"], tmp_path / "o.mp4"))
    assert_refused(code, err, 2, "7800x4400 is larger than")
    assert "--max-size" in err
    assert_no_output(tmp_path, tmp_path / "o.mp4")


def test_huge_frames_can_still_be_described(media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, ["info", str(media["huge"]), "--json"])[0] == 0


@pytest.mark.parametrize("command", ["convert", "smooth"])
def test_alpha_gray_and_16_bit_images_work_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          caplog: pytest.LogCaptureFixture, command: str) -> None:
    folder = tmp_path / "modes"
    folder.mkdir()
    ramp = np.linspace(0, 1, 64, dtype=np.float32)[None, :].repeat(48, 0)
    for i in range(4):  # first image RGBA (the folder's mode), then gray and 16-bit colour
        shifted = np.roll(ramp, i, axis=1)
        rgba = np.dstack([shifted * 255] * 3 + [np.full_like(shifted, 128)]).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}a.png"), rgba)
        cv2.imwrite(str(folder / f"{i:03d}b.png"), (shifted * 255).astype(np.uint8))
        cv2.imwrite(str(folder / f"{i:03d}c.png"), np.dstack([shifted * 65535] * 3).astype(np.uint16))
    out = tmp_path / "o"
    with caplog.at_level(logging.WARNING):
        code, err = run(capsys, argv_for(command, folder, out))
    assert code == 0, err
    assert any("alpha channel is dropped" in r.getMessage() for r in caplog.records)
    written = sorted(out.iterdir())
    assert len(written) == 12
    # gray, RGBA and 16-bit versions of one ramp come out as the same grey ramp; smoothed, they sit at different
    # places in the clip, so they may differ on the column where np.roll wraps the ramp (no flow follows that)
    first = [cv2.imread(str(p)).astype(np.float32) for p in written[:3]]
    diffs = [np.abs(f - first[0]) for f in first]
    if command == "convert":
        assert max(float(d.max()) for d in diffs) <= 3.0
    else:
        assert max(float(d.mean()) for d in diffs) <= 3.0


@pytest.mark.parametrize("command", ["convert", "smooth"])
def test_variable_frame_rate_works_with_a_warning(variable_rate_clip: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  caplog: pytest.LogCaptureFixture, command: str) -> None:
    out = tmp_path / "o.mp4"
    with caplog.at_level(logging.WARNING):
        code, err = run(capsys, argv_for(command, variable_rate_clip, out))
    assert code == 0, err
    assert any("variable" in r.getMessage() and "constant" in r.getMessage() for r in caplog.records)
    info = probe(out)
    assert info.frames == probe(variable_rate_clip).frames and not info.variable_rate


@pytest.mark.parametrize("command", ["smooth", "interpolate"])
def test_output_equal_to_input_is_refused(media: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], command: str) -> None:
    clip = shutil.copy(media["good"], tmp_path / "clip.mp4")
    before = Path(clip).read_bytes()
    code, err = run(capsys, argv_for(command, Path(clip), Path(clip)))
    assert_refused(code, err, 3, "overwrite")
    assert Path(clip).read_bytes() == before


@pytest.mark.parametrize("command", ["smooth", "interpolate", "batch"])
def test_unwritable_output_location_is_refused(media: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], command: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    if command == "batch":
        code, err = run(capsys, ["batch", str(media["good"]), "-o", str(blocker / "out")])
        assert_refused(code, err, 3, "cannot create the output folder")
    else:
        code, err = run(capsys, argv_for(command, media["good"], blocker / "o.mp4"))
        assert_refused(code, err, 3, "does not exist")
