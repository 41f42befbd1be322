"""Frame interpolation on synthetic clips with known motion: midpoints, cuts, timing, duplicates, streaming."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from benchmarks.smoothing import psnr
from coherence.errors import ConfigError, InputError
from coherence.flow import flow_both_ways, get_flow, resize_flow, warp
from coherence.interpolate import (
    DIS_OPTIONS,
    INTERPOLATION_PRESETS,
    Interpolator,
    interpolate,
    output_frame_count,
    source_position,
)
from coherence.synthesis import acceleration, check_window, interpolate_pair, warp_blend

H, W = 64, 96
VELOCITY = (2.0, 0.5)  # pixels per frame, x then y, of the square
PAN = (-1.5, 0.5)  # of the background


def _texture(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """A continuous colour texture ``(3, ...)`` in [0, 1] of coordinates ``x, y`` (pixels): random values on a
    4-pixel lattice, interpolated bilinearly (mirrored beyond the lattice), so it can be sampled at any offset."""
    g = torch.Generator().manual_seed(seed)
    lattice = torch.rand(1, 3, 40, 56, generator=g)
    grid = torch.stack((x / 4 / 55 * 2 - 1, y / 4 / 39 * 2 - 1), dim=-1)[None]
    return torch.nn.functional.grid_sample(lattice, grid, mode="bilinear", padding_mode="reflection",
                                           align_corners=True)[0]


def render(time: float, *, seed: int = 0, size: int = 22) -> torch.Tensor:
    """Exact frame ``(3, H, W)`` at (fractional) ``time``: a textured square moving at ``VELOCITY`` over a
    textured background panning at ``PAN``; the square's texture moves with it."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    left, top = 20 + VELOCITY[0] * time, 18 + VELOCITY[1] * time
    # texture coordinates start 20 pixels into the lattice, a margin for the pan
    background = _texture(xs + 20 - PAN[0] * time, ys + 20 - PAN[1] * time, seed)
    square = _texture(xs - left, ys - top, seed + 1) * 0.6 + 0.4 * torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    # anti-aliased coverage, so that the frame is a continuous function of time
    cover_x = ((xs + 0.5 - left).clamp(0, 1) - (xs - 0.5 - left - size).clamp(0, 1)).clamp(0, 1)
    cover_y = ((ys + 0.5 - top).clamp(0, 1) - (ys - 0.5 - top - size).clamp(0, 1)).clamp(0, 1)
    cover = cover_x * cover_y
    return background * (1 - cover) + square * cover


def orbit(time: float, *, radius: float = 6.0) -> torch.Tensor:
    """Exact frame ``(3, H, W)`` at ``time`` of a view moving on a circle of ``radius`` pixels, a sixth of a turn
    per frame (an orbiting or hand-held camera): the motion turns all the time."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    angle = math.pi / 3 * time
    return _texture(xs + 20 + radius * math.cos(angle), ys + 20 + radius * math.sin(angle), 0)


def other_scene(count: int) -> list[torch.Tensor]:
    """A different shot: blue-green texture with its own motion."""
    frames = []
    for t in range(count):
        ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
        tex = _texture(xs + 2 * t, ys, 7)
        frames.append(torch.stack((0.2 * tex[0], tex[1], 0.3 + 0.7 * tex[2])).clamp(0, 1))
    return frames


def test_midpoint_matches_true_motion_far_better_than_blending() -> None:
    frames = torch.stack([render(t) for t in range(4)])
    out, fps = interpolate(frames, 8, factor=2)
    assert fps == 16 and out.shape[0] == 7
    for k in range(3):
        truth = render(k + 0.5)
        ours, blend = psnr(out[2 * k + 1], truth), psnr(0.5 * (frames[k] + frames[k + 1]), truth)
        assert ours > 35.0
        assert ours > blend + 2.5


def test_turning_motion_is_followed_on_its_curve() -> None:
    # on a circle of 6 px, a sixth of a turn per frame, the straight path from frame k to k + 1 passes 0.8 px
    # inside the true midpoint; the flows to frames k - 1 and k + 2 give the curve (about +6 dB here)
    frames = torch.stack([orbit(t) for t in range(6)])
    out, _ = interpolate(frames, 8, factor=2)
    estimator = get_flow("dis", preset="medium", **DIS_OPTIONS)
    for k in (1, 2, 3):  # the segments with a frame on either side
        truth = orbit(k + 0.5)
        flow_ab, flow_ba = flow_both_ways(estimator, frames[k:k + 1], frames[k + 1:k + 2])
        straight = interpolate_pair(frames[k], frames[k + 1], 0.5, flow_ab=flow_ab[0], flow_ba=flow_ba[0])
        assert psnr(out[2 * k + 1], truth) > psnr(straight, truth) + 3.0


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.5, 1.0), (1.0, 2.5)])
def test_acceleration_fits_the_parabola_through_three_frames(spacing: tuple[float, float]) -> None:
    # a pixel at v s + a s^2 / 2 at time s, frames at s = -before, 0, after (a re-timed run of duplicates spaces
    # them unevenly): the acceleration term is a after^2, and the path it gives passes the true position
    before, after = spacing
    v, a = torch.tensor([1.5, -0.5]), torch.tensor([0.8, 0.3])
    at = lambda s: (v * s + a * s * s / 2).view(1, 2, 1, 1).expand(1, 2, 16, 24)  # noqa: E731
    # inside the frame (pixels whose match leaves it fail the forward-backward test and keep a straight path)
    bend = acceleration(at(after), at(-before), -at(-before), ratio=before / after)[..., 4:-4, 4:-4]
    assert torch.allclose(bend, (a * after**2).view(1, 2, 1, 1).expand_as(bend), atol=1e-5)
    t = 0.3
    assert torch.allclose(t * at(after)[..., 4:-4, 4:-4] - t * (1 - t) / 2 * bend, at(t * after)[..., 4:-4, 4:-4],
                          atol=1e-5)


def test_quarter_times_follow_the_motion() -> None:
    frames = torch.stack([render(t) for t in range(3)])
    out, _ = interpolate(frames, 8, factor=4)
    for j in (1, 2, 3, 5, 6, 7):
        truth = render(j / 4)
        assert psnr(out[j], truth) > psnr(out[4 * round(j / 4)], truth) + 3.0


def test_interpolation_bounds_know_where_an_off_centre_frame_sits() -> None:
    # held-out frames three tenths of the way from one kept frame to the next: an interpolator puts them halfway; the
    # benchmark's bounds pick the time with hindsight, or take flows from the held-out frame itself
    from benchmarks.cases import quantise
    from benchmarks.interpolation_bounds import bound_outputs

    times = (0.0, 0.3, 1.0, 1.3, 2.0)
    frames = torch.stack([render(t) for t in times])
    ours, _ = interpolate(frames[0::2], 8, factor=2)
    bounds = bound_outputs(frames, ours)
    for j in (1, 3):
        truth = frames[j]
        assert psnr(bounds["hindsight t"][j], truth) > psnr(ours[j], truth) + 3.0
        assert psnr(bounds["middle flows"][j], truth) > 30.0
    for name, output in bounds.items():
        assert output.shape == ours.shape, name
        assert torch.equal(output[0::2], quantise(frames[0::2])), name


def test_opencv_warp_blend_matches_grid_sample() -> None:
    # the CPU path (cv2.remap on a 1/32-pixel grid) against the torch reference it replaces, with coarse flows
    g = torch.Generator().manual_seed(3)
    a, b = render(0.0)[None], render(1.0, seed=5)[None]
    flow_t0, flow_t1 = (torch.randn(1, 2, 16, 24, generator=g) * 3 for _ in range(2))
    for mode in ("bicubic", "bilinear"):
        reference = warp(torch.cat((a, b)), resize_flow(torch.cat((flow_t0, flow_t1)), (H, W)), mode=mode)
        reference = (0.7 * reference[:1] + 0.3 * reference[1:]).clamp(0, 1)
        ours = warp_blend(a, b, 0.3, flow_t0, flow_t1, mode=mode)
        assert ours.shape == a.shape and ours.dtype == torch.float32
        assert (ours - reference).abs().max() < 0.02 and psnr(ours, reference) > 50


def test_check_keeps_what_the_flow_cannot_explain_and_the_motion_it_can() -> None:
    g = torch.Generator().manual_seed(4)
    # a static dither-like texture and flows that wander by half a pixel (what DIS returns on such frames): the
    # warps resample the texture, the plain blend is the frame itself
    still = torch.rand(1, 3, H, W, generator=g)
    wander = (torch.rand(2, 1, 2, H // 4, W // 4, generator=g) - 0.5)
    unchecked = warp_blend(still, still, 0.5, wander[0], wander[1])
    checked = warp_blend(still, still, 0.5, wander[0], wander[1], check=check_window(H, W))
    assert psnr(checked, still) > psnr(unchecked, still) + 10
    # real motion with its flows: the warped frames agree, the unwarped ones do not, so the warps are kept
    a, b, truth = render(0.0)[None], render(1.0)[None], render(0.5)[None]
    flow_t0 = torch.tensor([-VELOCITY[0] / 2, -VELOCITY[1] / 2]).view(1, 2, 1, 1).expand(1, 2, H, W)
    square = (slice(None), slice(None), slice(22, 36), slice(24, 40))  # inside the square at every time
    moved = warp_blend(a, b, 0.5, flow_t0, -flow_t0, check=check_window(H, W))
    plain = 0.5 * (a + b)
    assert psnr(moved[square], truth[square]) > psnr(plain[square], truth[square]) + 10


def test_check_agrees_between_opencv_and_torch() -> None:
    g = torch.Generator().manual_seed(6)
    a, b = render(0.0)[None], torch.rand(1, 3, H, W, generator=g)  # a pair no flow can explain
    flow_t0, flow_t1 = (torch.randn(1, 2, 16, 24, generator=g) for _ in range(2))
    window = check_window(H, W)
    opencv = warp_blend(a, b, 0.4, flow_t0, flow_t1, check=window)
    reference = warp_blend(a.double(), b.double(), 0.4, flow_t0.double(), flow_t1.double(), check=window)
    assert (opencv.double() - reference).abs().mean() < 1 / 255


def test_pair_endpoints_and_validation() -> None:
    a, b = render(0), render(1)
    zero = torch.zeros(2, H, W)
    assert torch.equal(interpolate_pair(a, b, 0.0, flow_ab=zero, flow_ba=zero), a)
    assert torch.equal(interpolate_pair(a, b, 1.0, flow_ab=zero, flow_ba=zero), b)
    still = interpolate_pair(a, a, 0.5, flow_ab=zero, flow_ba=zero)
    assert (still - a).abs().max() < 1e-5
    with pytest.raises(InputError):
        interpolate_pair(a, b, 1.5, flow_ab=zero, flow_ba=zero)
    with pytest.raises(InputError):
        interpolate_pair(a, b, 0.5, flow_ab=torch.zeros(2, H, W + 1), flow_ba=zero)


def test_nothing_is_interpolated_across_a_cut() -> None:
    first = [render(t) for t in range(3)]
    second = other_scene(3)
    out, _ = interpolate(torch.stack(first + second), 8, factor=4)
    assert out.shape[0] == 21
    # positions 2, 2.25, 2.5, 2.75 hold the last frame of the first shot; 3 is the first of the second
    for j in range(8, 12):
        assert torch.equal(out[j], first[2])
    assert torch.equal(out[12], second[0])
    # inside each shot motion is interpolated (frames differ from both neighbours)
    assert not torch.equal(out[2], first[0]) and not torch.equal(out[2], first[1])
    assert not torch.equal(out[14], second[0]) and not torch.equal(out[14], second[1])


@pytest.mark.parametrize(("in_fps", "kwargs", "frames", "expected"), [
    (8, {"factor": 2}, 5, 9),
    (8, {"factor": 4}, 5, 17),
    (8, {"to_fps": 24}, 7, 19),
    (16, {"to_fps": 24}, 9, 13),
])
def test_frame_counts_and_exact_times(in_fps: int, kwargs: dict, frames: int, expected: int) -> None:
    clip = torch.stack([render(t * 0.7) for t in range(frames)])
    stage = Interpolator(**kwargs, scene_cuts=False)
    out_fps = stage.output_fps(Fraction(in_fps))
    out = list(stage.process(iter(clip), in_fps))
    assert len(out) == expected == output_frame_count(frames, Fraction(in_fps), out_fps)
    for k, frame in enumerate(out):
        position = source_position(k, Fraction(in_fps), out_fps)
        if position.denominator == 1:  # output frames at input times are the input frames, bit for bit
            assert torch.equal(frame, clip[int(position)])
        else:
            assert not torch.equal(frame, clip[math.floor(position)])


def test_ntsc_target_rate_is_exact() -> None:
    stage = Interpolator(to_fps="30000/1001")
    out_fps = stage.output_fps(Fraction(24))
    assert out_fps == Fraction(30000, 1001)
    assert source_position(1001, Fraction(24), out_fps) == Fraction(24 * 1001 * 1001, 30000)
    assert output_frame_count(241, Fraction(24), out_fps) == 1 + math.floor(240 * Fraction(30000, 1001) / 24)


def test_duplicate_runs_are_retimed_without_stutter_or_extra_flow() -> None:
    distinct = [render(t) for t in range(3)]
    noisy = [f + 1e-4 * torch.randn_like(f) for f in distinct]  # "nearly identical" repeats
    clip = torch.stack([distinct[0], noisy[0], distinct[0], distinct[1], noisy[1], distinct[1], distinct[2],
                        noisy[2], distinct[2]])
    stage = Interpolator(factor=2)
    out = torch.stack(list(stage.process(iter(clip), 8)))
    assert out.shape[0] == 17
    assert stage.flow_pairs == 2  # one per real change, none between repeats
    # runs sit at their centres (positions 1, 4, 7): between them the motion is spread evenly
    for k in range(2, 14):
        assert (out[k + 1] - out[k]).abs().mean() > 1e-3, f"stutter at output frame {k}"
        truth = render((k / 2 - 1) / 3)
        assert psnr(out[k], truth) > 28.0


def test_long_still_is_held_exactly() -> None:
    still = render(0)
    clip = torch.stack([still] * 7 + [render(1), render(2)])
    stage = Interpolator(factor=2, max_duplicate_run=4)
    out = list(stage.process(iter(clip), 8))
    for k in range(13):  # positions 0 .. 6
        assert torch.equal(out[k], still)
    assert not torch.equal(out[13], still)
    assert stage.flow_pairs == 2


def test_bounded_lookahead() -> None:
    consumed = 0

    def source():
        nonlocal consumed
        for t in range(6):
            consumed += 1
            yield render(t)

    for k, _ in enumerate(Interpolator(factor=4).process(source(), 8)):
        # output at position s needs inputs up to floor(s) + 1, one more to know that floor(s) + 1 does not
        # start a run of duplicates, one more whose flows bend the segment's paths, and one more whose flows are
        # estimated while this segment is synthesised
        assert consumed <= k // 4 + 5


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        Interpolator()
    with pytest.raises(ConfigError):
        Interpolator(factor=2, to_fps=24)
    with pytest.raises(ConfigError):
        Interpolator(factor=0)
    with pytest.raises(InputError):
        list(Interpolator(factor=2).process(iter([torch.zeros(H, W)]), 8))
    with pytest.raises(InputError):
        list(Interpolator(factor=2).process(iter([]), 8))


def test_presets_are_data() -> None:
    for preset in INTERPOLATION_PRESETS.values():
        assert preset.target_fps > preset.source_fps
        assert 0.0 <= preset.smoothing <= 1.0


def test_cli_interpolate_writes_exact_count_and_rate(tmp_path) -> None:
    from cli import main
    from coherence.clip import Clip
    from coherence.io import probe, write_clip

    source = tmp_path / "in.mkv"
    write_clip(Clip(torch.stack([render(t) for t in range(5)]), Fraction(8)), source, lossless=True)
    target = tmp_path / "out.mkv"
    assert main(["-q", "interpolate", str(source), "-o", str(target), "--to-fps", "24", "--lossless"]) == 0
    info = probe(target)
    assert info.fps == 24 and info.frames == 13
