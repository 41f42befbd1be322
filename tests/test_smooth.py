"""The smoothing stage on synthetic clips with known ground truth."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from benchmarks.smoothing import psnr
from coherence.deflicker import FITS
from coherence.dejitter import SHAKE_SPAN
from coherence.errors import ConfigError, InputError
from coherence.noise import DECAY_CEILING
from coherence.smooth import Smoother, lookahead, smooth
from coherence.smooth_presets import SMOOTH_PRESETS
from coherence.stage import Stage
from generators.artifacts import Artifacts, artifact_preset, degrade
from generators.synthetic import synthetic_clip

SIZE = (96, 64)  # width, height


def exposure_flicker(frames: torch.Tensor, clean: torch.Tensor) -> float:
    """Frame-to-frame change of the log exposure error: 0 when the exposure error is constant in time."""
    error = (frames.mean((1, 2, 3)) + 0.02).log() - (clean.mean((1, 2, 3)) + 0.02).log()
    return float(error.diff().abs().mean())


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    return synthetic_clip(frames=24, size=SIZE, seed=3, artifacts=None).clean.frames


def test_is_a_stage() -> None:
    smoother = Smoother()
    assert isinstance(smoother, Stage)
    assert smoother.output_fps(Fraction(24)) == 24
    assert smoother.radius == FITS * smoother.illumination_radius(Fraction(30)) + 3 * smoother.lookahead


def test_illumination_window_is_in_seconds() -> None:
    smoother = Smoother()
    settings = SMOOTH_PRESETS["default"]
    assert smoother.illumination_radius(Fraction(30)) == round(settings.window * 30)
    assert smoother.illumination_radius(Fraction(8)) < smoother.illumination_radius(Fraction(30))
    assert smoother.illumination_radius(Fraction(1)) == 1
    assert Smoother(radius=5).illumination_radius(Fraction(8)) == 5
    assert Smoother(strength=0.5).decay == pytest.approx(0.5 * smoother.decay)
    # the anti-causal pass reaches until a frame's weight is negligible, at most for the highest decay a noisy clip
    # can call for
    steps = lookahead(smoother.decay)
    assert smoother.decay ** steps < 0.01 <= smoother.decay ** (steps - 1)
    assert smoother.lookahead == lookahead(DECAY_CEILING) > steps


def test_flicker_benchmark_degradation_is_removed(clean: torch.Tensor) -> None:
    degraded = degrade(clean, artifact_preset("flicker"), seed=1)
    out = smooth(degraded, fps=24)
    assert psnr(out, clean) > psnr(degraded, clean) + 4.0
    assert exposure_flicker(out, clean) < 0.3 * exposure_flicker(degraded, clean)


@pytest.mark.parametrize("artifacts,gain_db", [
    (Artifacts(gain=0.12), 3.0), (Artifacts(cast=0.06), 3.0), (Artifacts(local_flicker=0.09), 2.0),
    (Artifacts(noise=8 / 255), 2.0),
    # boiling moves texture itself, so the flow follows it only in part: a smaller gain
    (Artifacts(boiling=1.0), 0.8),
], ids=["gain", "cast", "local", "noise", "boiling"])
def test_each_artefact_type_is_reduced(clean: torch.Tensor, artifacts: Artifacts, gain_db: float) -> None:
    degraded = degrade(clean, artifacts, seed=2)
    out = smooth(degraded, fps=24)
    assert psnr(out, clean) > psnr(degraded, clean) + gain_db


def test_strength_zero_is_identity(clean: torch.Tensor) -> None:
    degraded = degrade(clean, artifact_preset("t2v"), seed=0)
    assert torch.equal(smooth(degraded, fps=24, strength=0.0), degraded)


def test_strength_scales_the_correction(clean: torch.Tensor) -> None:
    degraded = degrade(clean, artifact_preset("flicker"), seed=4)
    half, full = smooth(degraded, strength=0.5), smooth(degraded, strength=1.0)
    assert psnr(degraded, clean) < psnr(half, clean) < psnr(full, clean)


@pytest.mark.parametrize("frames,size", [(1, (96, 64)), (2, (96, 64)), (7, (33, 21))])
def test_frame_count_and_size_kept(frames: int, size: tuple[int, int]) -> None:
    clip = synthetic_clip(frames=frames, size=size, seed=5, artifacts="t2v").degraded.frames
    for preset, dejitter in [*((name, 0.0) for name in SMOOTH_PRESETS), ("default", 3.0)]:
        out = smooth(clip, preset=preset, dejitter=dejitter)
        assert out.shape == clip.shape and out.dtype == torch.float32
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


@pytest.mark.parametrize("dejitter", [0.0, 3.0])
def test_nothing_crosses_a_scene_cut(dejitter: float) -> None:
    clip = synthetic_clip(frames=20, size=SIZE, seed=6, artifacts="t2v", cuts=[9])
    frames = clip.degraded.frames
    whole = smooth(frames, dejitter=dejitter)
    # each scene smoothed on its own gives exactly what the cut clip gives: no frame saw the other scene
    torch.testing.assert_close(whole[:9], smooth(frames[:9], dejitter=dejitter), atol=1e-5, rtol=0)
    torch.testing.assert_close(whole[9:], smooth(frames[9:], dejitter=dejitter), atol=1e-5, rtol=0)


def test_motion_is_neither_lagged_nor_smeared() -> None:
    clip = synthetic_clip(frames=16, size=SIZE, seed=7, artifacts=Artifacts(gain=0.08, noise=4 / 255), speed=3.0,
                          pan=2.0)
    clean = clip.clean.frames
    out = smooth(clip.degraded.frames)
    for t in range(1, 15):
        here = float((out[t] - clean[t]).abs().mean())
        assert here < float((out[t] - clean[t - 1]).abs().mean())
        assert here < float((out[t] - clean[t + 1]).abs().mean())


def test_still_scene_stays_sharp(clean: torch.Tensor) -> None:
    still = clean[:1].expand(16, -1, -1, -1).contiguous()
    degraded = degrade(still, Artifacts(gain=0.08, noise=4 / 255), seed=8)
    out = smooth(degraded)

    def detail(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    assert psnr(out, still) > psnr(degraded, still) + 3.0
    assert detail(out) > 0.9 * detail(still)


@pytest.mark.parametrize("flow_size", [(320, 512), (160, 256), (80, 128)])
def test_trajectory_weights_keep_frame_geometry_whatever_the_flow_grid(flow_size: tuple[int, int]) -> None:
    from coherence.trajectory import trajectory_weights

    # a pan of 16 frame pixels to the right, given on the flow's grid: the last 16 columns leave the frame
    shift = 16 * flow_size[1] / 512
    flows = torch.zeros(2, 2, *flow_size)
    flows[0, 0], flows[1, 0] = shift, -shift
    full, held = trajectory_weights(flows, (320, 512))
    assert full.shape == (2, 2, 320, 512) and held.shape == (2, 320, 512, 1)
    torch.testing.assert_close(full[0, 0], torch.full((320, 512), 16.0), atol=0.1, rtol=0)  # corner-aligned grids
    kept = held[0, 100, :, 0]
    assert float(kept[:480].min()) == 1.0 and float(kept[-12:].max()) == 0.0
    assert 14 <= int((kept < 0.5).sum()) <= 18
    # and the first 16 columns of the second frame came from outside the first
    assert 14 <= int((held[1, 100, :, 0] < 0.5).sum()) <= 18


def test_reduced_scale_flow_smooths_as_well() -> None:
    # at 512x320 the occlusion tests of a half-scale flow run on a grid half as fine again, its vectors rescaled
    clean = synthetic_clip(frames=12, size=(512, 320), seed=3, artifacts=None).clean.frames
    degraded = degrade(clean, artifact_preset("t2v"), seed=1)
    full = psnr(smooth(degraded, fps=24), clean)
    assert full > psnr(degraded, clean) + 2.0
    assert psnr(smooth(degraded, fps=24, flow_scale=0.5), clean) > full - 0.3


def _inner_psnr(a: torch.Tensor, b: torch.Tensor, margin: int = 6) -> float:
    """PSNR away from the borders, where a shifted frame has no content to show."""
    return psnr(a[..., margin:-margin, margin:-margin], b[..., margin:-margin, margin:-margin])


def test_dejitter_takes_out_camera_shake_and_leaves_smooth_motion_alone() -> None:
    clip = synthetic_clip(frames=24, size=(128, 96), seed=5, artifacts=Artifacts(jitter=1.0))  # a pan that shakes
    clean, shaken = clip.clean.frames, clip.degraded.frames
    plain = smooth(shaken, fps=24)
    steady = smooth(shaken, fps=24, dejitter=3.0)
    assert _inner_psnr(steady, clean) > _inner_psnr(plain, clean) + 1.5
    # a pan that zooms and objects that move, without shake: the straight-line trajectories read their curvature as
    # a shift shared by neighbouring frames, which is not jitter and stays
    assert _inner_psnr(smooth(clean, fps=24, dejitter=3.0), smooth(clean, fps=24)) > 50.0
    assert torch.equal(smooth(clean, fps=24, dejitter=0.0), smooth(clean, fps=24))


@pytest.mark.parametrize("dejitter", [0.0, 3.0])
def test_streams_lazily(dejitter: float) -> None:
    frames = synthetic_clip(frames=40, size=SIZE, seed=9, artifacts="flicker").degraded.frames
    smoother = Smoother(preset="light", dejitter=dejitter)
    consumed = 0

    def source() -> Iterator[torch.Tensor]:
        nonlocal consumed
        for frame in frames:
            consumed += 1
            yield frame

    stream = smoother.process(source(), Fraction(24))
    next(stream)
    # the illumination window once per fit (each fit of a frame's correction waits for its neighbours' previous
    # fits), three lookaheads (the anti-causal pass runs once per block of frames and reads two; the third keeps the
    # flow thread busy), and the frames whose shifts tell jitter from motion
    jitter_span = SHAKE_SPAN if dejitter else 0
    assert consumed <= FITS * smoother.illumination_radius(Fraction(24)) + 3 * smoother.lookahead + 2 + jitter_span
    assert sum(1 for _ in stream) == len(frames) - 1


def test_bad_options_and_inputs() -> None:
    with pytest.raises(ConfigError):
        Smoother(strength=1.5)
    with pytest.raises(ConfigError):
        Smoother(preset="nope")
    with pytest.raises(ConfigError):
        Smoother(flow="dis", flow_weights="x.pth")
    with pytest.raises(ConfigError, match="dejitter"):
        Smoother(dejitter=-1.0)
    with pytest.raises(InputError):
        smooth(torch.rand(4, 1, 8, 8))


def test_cli_smooth(tmp_path: Path, clip_with_audio: Path) -> None:
    from cli import main
    from coherence.io import probe

    out = tmp_path / "smooth.mp4"
    assert main(["-q", "smooth", str(clip_with_audio), "-o", str(out), "--preset", "light"]) == 0
    source, result = probe(clip_with_audio), probe(out)
    assert (result.frames, result.width, result.height, result.fps) == (source.frames, source.width,
                                                                       source.height, source.fps)
    assert result.has_audio


def test_longer_trajectories_average_a_still_scene_more(clean: torch.Tensor) -> None:
    still = clean[:1].expand(16, -1, -1, -1).contiguous()
    degraded = degrade(still, Artifacts(noise=6 / 255), seed=10)
    light, strong = smooth(degraded, preset="light", radius=0), smooth(degraded, preset="strong", radius=0)
    # a larger decay weighs more frames along each trajectory: more noise goes, and no detail with it
    assert psnr(strong, still) > psnr(light, still) + 1.0
    assert psnr(light, still) > psnr(degraded, still) + 2.0

    def detail(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    assert detail(strong) > 0.9 * detail(still)


def test_flow_ignores_smooth_illumination_changes(clean: torch.Tensor) -> None:
    from coherence.deflicker import flow_image
    from coherence.flow import get_flow
    from coherence.flow.ops import occlusion_mask

    a, b = clean[2:3], clean[3:4]
    ramp = torch.linspace(0.7, 1.3, a.shape[-1]).view(1, 1, 1, -1)
    b_lit = (b * ramp).clamp(0, 1)  # a smooth exposure field, as generators flicker
    flow = get_flow("dis", preset="ultrafast")

    def failing(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(occlusion_mask(flow(x, y), flow(y, x)).mean())

    normalised = failing(flow_image(a), flow_image(b_lit))
    assert normalised < failing(a, b_lit)
    assert normalised < failing(flow_image(a), flow_image(b)) + 0.1


def test_trajectory_step_follows_the_flow_convention(clean: torch.Tensor) -> None:
    from coherence.flow import warp
    from coherence.trajectory import homogeneous, trajectory_step, warp_channels_last

    frame, neighbour = clean[4], clean[5]
    flow = torch.zeros(1, 2, *frame.shape[-2:])
    flow[:, 0] = 1.5  # frame(p) ~ neighbour(p + (1.5, 0))
    flow[:, 1] = -0.5
    state = homogeneous(neighbour)
    # the OpenCV path samples like grid_sample (corners aligned, border replicated)
    expected = warp(state.permute(2, 0, 1)[None], flow)[0].permute(1, 2, 0)
    torch.testing.assert_close(warp_channels_last(state, flow), expected, atol=2e-3, rtol=0)
    weight = torch.full((*frame.shape[-2:], 1), 0.5)
    weight[:, :10] = 0.0
    out = trajectory_step(homogeneous(frame), state, flow, weight)
    torch.testing.assert_close(out[:, 10:], homogeneous(frame)[:, 10:] + 0.5 * expected[:, 10:], atol=2e-3, rtol=0)
    torch.testing.assert_close(out[:, :10], homogeneous(frame)[:, :10])  # an occluded trajectory restarts


def test_frames_the_correction_brightened_weigh_less(clean: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A still scene whose exposure alternates x1.25 and x0.8 before the noise: the dark frames, brightened by the
    correction, carry amplified noise; weighing each sample by its inverse noise variance takes more of it out than
    equal weights do."""
    still = clean[:1].expand(16, -1, -1, -1).contiguous()
    degraded = degrade(still * torch.tensor([1.25, 0.8] * 8).view(-1, 1, 1, 1), Artifacts(noise=6 / 255), seed=10)
    weighted = smooth(degraded, radius=3)
    monkeypatch.setattr(importlib.import_module("coherence.smooth_run"), "correction_precision",
                        lambda correction, size, strength=1.0: torch.ones(size))
    equal = smooth(degraded, radius=3)
    dark = slice(1, None, 2)
    assert psnr(weighted[dark], still[dark]) > psnr(equal[dark], still[dark]) + 0.5
    assert psnr(weighted, still) > psnr(equal, still)


def test_a_region_clipped_in_one_channel_takes_its_field_from_the_others(clean: torch.Tensor) -> None:
    """A still scene whose right half is a sky clipped in blue, under a smooth local flicker: the flicker drives
    the blue in and out of clipping there, but red and green follow it, and the achromatic field is estimated from
    them; the sky's red and green lose as large a share of their flicker as the rest of the frame."""
    still = clean[:1].expand(16, -1, -1, -1).clone()
    still[:, 2, :, 48:] = 1.0
    still[:, :2, :, 48:] = 0.55 + 0.3 * still[:, :2, :, 48:]
    degraded = degrade(still, Artifacts(local_flicker=0.08), seed=4)
    assert float((degraded[:, 2, :, 48:] >= 254 / 255).float().mean()) > 0.3
    out = smooth(degraded, radius=3)

    def kept(part: slice) -> float:
        """The share of the red and green planes' temporal spread that smoothing leaves in ``part`` (columns)."""
        return float(out[:, :2, :, part].std(0).mean() / degraded[:, :2, :, part].std(0).mean())

    sky, rest = kept(slice(48, None)), kept(slice(None, 48))
    assert sky < 0.5
    assert sky < 1.3 * rest
