"""``coherence generate`` with the synthetic model (no weights): output, latent blending, errors as exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import main
from coherence.io import read_clip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generate")
    common = ["-q", "generate", "a red ball", "--model", "synthetic", "--frames", "8", "--size", "96x64", "--seed", "4"]
    assert main([*common, "-o", str(out / "plain"), "--ground-truth", str(out / "truth")]) == 0
    assert main([*common, "-o", str(out / "blended"), "--latent-blend", "0.6"]) == 0
    return out


def test_generate_writes_the_clip_and_its_ground_truth(generated: Path) -> None:
    plain, truth = read_clip(generated / "plain"), read_clip(generated / "truth")
    assert plain.frames.shape == (8, 3, 64, 96) and truth.frames.shape == plain.frames.shape


def test_latent_blend_brings_the_clip_closer_to_the_truth(generated: Path) -> None:
    plain, blended = read_clip(generated / "plain"), read_clip(generated / "blended")
    truth = read_clip(generated / "truth")
    assert blended.frames.shape == plain.frames.shape
    assert (blended.frames - truth.frames).square().mean() < (plain.frames - truth.frames).square().mean()


@pytest.mark.parametrize("extra, code", [
    (["--size", "96by64"], 4),
    (["--model", "no-such-model"], 4),
    (["--steps", "10"], 4),  # the synthetic generator has no denoising steps to set
    (["--latent-blend", "1.5"], 4),
])
def test_generate_errors_are_one_line_exit_codes(tmp_path: Path, extra: list[str], code: int,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["generate", "a ball", "--frames", "4", "--size", "64x64", "-o", str(tmp_path / "out"), *extra]
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("coherence: error:") and "\n" not in err


def test_generate_then_smooth_and_interpolate_on_the_default_device(tmp_path: Path) -> None:
    out = tmp_path / "post.mp4"
    code = main(["--quiet", "generate", "a ball", "--model", "synthetic", "--frames", "8", "--size", "64x64",
                 "--smooth", "--to-fps", "48", "-o", str(out)])
    assert code == 0
    clip = read_clip(out)
    assert clip.fps == 48 and len(clip) == 15  # 8 frames at 24 fps span 7/24 s: 15 frames at 48 fps
