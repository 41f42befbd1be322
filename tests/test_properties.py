"""Property-based tests of the core ops and stages: for any finite input in range, outputs are finite, in range,
of the right shape, and masks are binary.

``tests/test_flow_ops.py`` already checks that zero flow is the identity and that masks of near-constant flows are
binary; here the flows are arbitrary fields (huge, discontinuous, non-finite-free but extreme) and the frames are
adversarial (constant, saturated, pure noise, flashing).
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coherence.flow import get_flow, occlusion_mask, warp
from coherence.flow.ops import compose_flow

PROPERTY = settings(max_examples=20, deadline=None)
STAGE = settings(max_examples=12, deadline=None)


@st.composite
def flow_fields(draw: st.DrawFn, *, n: int = 1) -> torch.Tensor:
    """``(n, 2, H, W)`` finite flows: smooth, noisy or piecewise, up to hundreds of pixels long."""
    h, w = draw(st.integers(2, 24)), draw(st.integers(2, 24))
    scale = draw(st.sampled_from([0.0, 0.3, 3.0, 40.0, 500.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["noise", "constant", "blocks"]))
    if kind == "noise":
        flow = rng.normal(0, scale, (n, 2, h, w))
    elif kind == "constant":
        flow = np.broadcast_to(rng.normal(0, scale, (n, 2, 1, 1)), (n, 2, h, w))
    else:  # two regions moving differently: a motion boundary
        flow = np.zeros((n, 2, h, w))
        split = draw(st.integers(0, w))
        flow[..., :split] = rng.normal(0, scale, (n, 2, 1, 1))
        flow[..., split:] = rng.normal(0, scale, (n, 2, 1, 1))
    return torch.from_numpy(np.ascontiguousarray(flow)).float()


@st.composite
def clips(draw: st.DrawFn, *, min_frames: int = 2, max_frames: int = 6) -> torch.Tensor:
    """``(T, 3, H, W)`` float32 clips in [0, 1]: noise, flat, saturated, flashing or a moving pattern, any size."""
    t = draw(st.integers(min_frames, max_frames))
    h, w = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    kind = draw(st.sampled_from(["noise", "flat", "saturated", "flashing", "moving"]))
    if kind == "noise":
        frames = rng.random((t, 3, h, w))
    elif kind == "flat":
        frames = np.full((t, 3, h, w), rng.random())
    elif kind == "saturated":
        frames = (rng.random((t, 3, h, w)) > 0.5).astype(np.float64)
    elif kind == "flashing":
        frames = np.stack([np.full((3, h, w), float(i % 2)) for i in range(t)])
    else:
        pattern = rng.random((3, h, w + 4 * t))
        frames = np.stack([pattern[:, :, 2 * i:2 * i + w] for i in range(t)])
    return torch.from_numpy(frames).float().clamp_(0, 1)


def _assert_frames_ok(out: list[torch.Tensor], shape: tuple[int, int]) -> None:
    for frame in out:
        assert frame.shape == (3, *shape) and frame.dtype == torch.float32
        assert bool(torch.isfinite(frame).all())
        assert float(frame.min()) >= 0.0 and float(frame.max()) <= 1.0


# -- ops ------------------------------------------------------------------------------------------------------
@PROPERTY
@given(forward=flow_fields(), data=st.data())
def test_occlusion_mask_is_binary_for_any_flows(forward: torch.Tensor, data: st.DataObject) -> None:
    backward = data.draw(st.sampled_from([-forward, torch.zeros_like(forward), forward.flip(-1)]))
    mask = occlusion_mask(forward, backward)
    assert mask.shape == (1, 1, *forward.shape[-2:])
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


@PROPERTY
@given(flow=flow_fields(n=2), channels=st.integers(1, 4), seed=st.integers(0, 1000))
def test_warp_keeps_range_and_shape_for_any_flow(flow: torch.Tensor, channels: int, seed: int) -> None:
    image = torch.rand(2, channels, *flow.shape[-2:], generator=torch.Generator().manual_seed(seed))
    out = warp(image, flow)
    assert out.shape == image.shape and bool(torch.isfinite(out).all())
    # bilinear sampling with border replication is a convex combination of input pixels
    assert float(out.min()) >= float(image.min()) - 1e-6 and float(out.max()) <= float(image.max()) + 1e-6


@PROPERTY
@given(first=flow_fields())
def test_composition_with_zero_flow_is_identity_and_finite(first: torch.Tensor) -> None:
    zero = torch.zeros_like(first)
    assert torch.allclose(compose_flow(first, zero), first)
    assert bool(torch.isfinite(compose_flow(first, first)).all())


@PROPERTY
@given(h=st.integers(1, 40), w=st.integers(1, 40), name=st.sampled_from(["dis", "farneback"]),
       scale=st.sampled_from([1.0, 0.5]), seed=st.integers(0, 1000))
def test_flow_estimators_accept_any_frame_size(h: int, w: int, name: str, scale: float, seed: int) -> None:
    a = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed))
    flow = get_flow(name, scale=scale)(a, a.roll(1, -1))
    assert flow.shape == (2, 2, h, w) and bool(torch.isfinite(flow).all())


# -- stages ---------------------------------------------------------------------------------------------------
@STAGE
@given(frames=clips(), preset=st.sampled_from(["light", "default", "strong"]),
       strength=st.sampled_from([0.3, 1.0]))
def test_smoother_output_is_finite_in_range_and_shape_preserving(frames: torch.Tensor, preset: str,
                                                                  strength: float) -> None:
    from coherence.smooth import Smoother

    out = list(Smoother(preset=preset, strength=strength).process(iter(frames), Fraction(24)))
    assert len(out) == frames.shape[0]
    _assert_frames_ok(out, tuple(frames.shape[-2:]))


@STAGE
@given(frames=clips(), factor=st.integers(2, 4))
def test_interpolator_output_is_finite_in_range_and_counts_frames(frames: torch.Tensor, factor: int) -> None:
    if importlib.util.find_spec("coherence.interpolate") is None:
        pytest.skip("coherence.interpolate is not in this checkout")
    from coherence.interpolate import Interpolator

    out = list(Interpolator(factor=factor).process(iter(frames), Fraction(24)))
    assert len(out) >= frames.shape[0]
    _assert_frames_ok(out, tuple(frames.shape[-2:]))
