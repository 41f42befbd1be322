"""The synthetic generator's ground truth: determinism, the true flow against warping, cuts, artefacts, latent
mode, and the generator registry."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from coherence.errors import ConfigError, DependencyError
from coherence.flow import get_flow
from coherence.flow.ops import warp
from generators import (
    GeneratedClip,
    Generator,
    LatentCodec,
    SyntheticScene,
    available_generators,
    get_generator,
    register_generator,
    synthetic_clip,
    synthetic_latent_clip,
)
from generators import base as generator_base

SIZE = (96, 64)


def _warp_errors(frames: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor) -> tuple[float, float]:
    """Mean abs error of ``warp(frame t+1, flow)`` against frame ``t`` where unoccluded and where occluded."""
    err = (warp(frames[1:], flow) - frames[:-1]).abs().mean(1, keepdim=True)
    visible = 1.0 - occlusion
    return float((err * visible).sum() / visible.sum()), float((err * occlusion).sum() / occlusion.sum())


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float((a - b).square().mean()))


def test_same_seed_same_clip_other_seed_other_clip():
    a = synthetic_clip(frames=6, size=SIZE, seed=3)
    b = synthetic_clip(frames=6, size=SIZE, seed=3)
    c = synthetic_clip(frames=6, size=SIZE, seed=4)
    for name in ("flow", "occlusion", "layers"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert torch.equal(a.clean.frames, b.clean.frames)
    assert torch.equal(a.degraded.frames, b.degraded.frames)
    assert (a.clean.frames - c.clean.frames).abs().mean() > 0.05
    assert not torch.equal(a.flow, c.flow)


@pytest.mark.parametrize("size", [(96, 64), (75, 41)])
def test_shapes_ranges_and_fps(size):
    clip = synthetic_clip(frames=5, size=size, seed=1, fps="30000/1001")
    w, h = size
    assert clip.clean.frames.shape == clip.degraded.frames.shape == (5, 3, h, w)
    assert clip.clean.frames.dtype == torch.float32
    assert 0.0 <= float(clip.degraded.frames.min()) and float(clip.degraded.frames.max()) <= 1.0
    assert clip.flow.shape == (4, 2, h, w) and clip.occlusion.shape == (4, 1, h, w)
    assert set(clip.occlusion.unique().tolist()) <= {0.0, 1.0}
    assert clip.flow_valid.tolist() == [True] * 4 and clip.cuts == ()
    assert clip.layers.shape == (5, h, w) and int(clip.layers.max()) <= 4
    assert clip.clean.fps == clip.degraded.fps == Fraction(30000, 1001)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_true_flow_reproduces_previous_frame_where_unoccluded(seed):
    clip = synthetic_clip(frames=12, size=SIZE, seed=seed, artifacts=None)
    assert float(clip.flow.abs().max()) > 1.0  # things do move
    visible_err, occluded_err = _warp_errors(clip.clean.frames, clip.flow, clip.occlusion)
    assert visible_err < 0.01
    share = float(clip.occlusion.mean())
    assert 0.003 < share < 0.3
    assert occluded_err > 3 * visible_err
    # the flow of the visible surface also explains the object layer map, except at occlusions
    layers_next = warp(clip.layers[1:, None].float(), clip.flow, mode="nearest")
    same_layer = (layers_next == clip.layers[:-1, None].float()).float()
    assert float((same_layer * (1 - clip.occlusion)).sum() / (1 - clip.occlusion).sum()) > 0.97


def test_true_flow_agrees_with_the_flow_estimator_convention():
    clip = synthetic_clip(frames=6, size=SIZE, seed=0, artifacts=None)
    estimate = get_flow("dis", preset="medium")(clip.clean.frames[:-1], clip.clean.frames[1:])
    epe = (estimate - clip.flow).square().sum(1, keepdim=True).sqrt()
    assert float(epe[clip.occlusion == 0].median()) < 0.3
    assert float(clip.flow.square().sum(1).sqrt().median()) > 0.5  # far from the trivial zero flow


def test_pure_pan_gives_uniform_flow_of_pan_speed():
    scene = SyntheticScene(*SIZE, seed=5, objects=0, pan=1.5, zoom=0.0)
    render = scene.render(4)
    magnitude = render.flow.square().sum(1).sqrt()
    assert torch.allclose(magnitude, torch.full_like(magnitude, 1.5), atol=1e-4)
    assert float(render.flow.std(dim=(2, 3)).max()) < 1e-4
    # only the strip of background that leaves the frame is occluded
    assert 0.0 < float(render.occlusion.mean()) < 2.5 / min(SIZE)


def test_cut_marks_flow_invalid_and_starts_another_scene():
    clip = synthetic_clip(frames=10, size=SIZE, seed=2, artifacts=None, cuts=(4,))
    uncut = synthetic_clip(frames=10, size=SIZE, seed=2, artifacts=None)
    assert clip.cuts == (4,)
    assert clip.flow_valid.tolist() == [True, True, True, False, True, True, True, True, True]
    assert float(clip.flow[3].abs().max()) == 0.0 and float(clip.occlusion[3].min()) == 1.0
    assert torch.equal(clip.clean.frames[:4], uncut.clean.frames[:4])
    assert (clip.clean.frames[4] - uncut.clean.frames[4]).abs().mean() > 0.05
    valid = clip.flow_valid
    visible_err, _ = _warp_errors(clip.clean.frames, clip.flow, clip.occlusion)
    assert visible_err < 0.01
    across = (warp(clip.clean.frames[4:5], clip.flow[3:4]) - clip.clean.frames[3:4]).abs().mean()
    assert float(across) > 5 * visible_err and not bool(valid[3])


@pytest.mark.parametrize("cuts", [(0,), (10,), (-1,)])
def test_cut_outside_clip_is_refused(cuts):
    with pytest.raises(ConfigError):
        synthetic_clip(frames=10, size=SIZE, cuts=cuts)


def test_artifacts_change_frames_independently_per_frame():
    clean = synthetic_clip(frames=12, size=SIZE, seed=0, artifacts=None)
    assert torch.equal(clean.degraded.frames, clean.clean.frames)
    clip = synthetic_clip(frames=12, size=SIZE, seed=0, artifacts="t2v")
    assert torch.equal(clip.clean.frames, clean.clean.frames)
    ratio = clip.degraded.frames.mean((1, 2, 3)) / clip.clean.frames.mean((1, 2, 3))
    assert float(ratio.std()) > 0.01  # brightness flicker differs from frame to frame
    degraded_err, _ = _warp_errors(clip.degraded.frames, clip.flow, clip.occlusion)
    clean_err, _ = _warp_errors(clip.clean.frames, clip.flow, clip.occlusion)
    assert degraded_err > 3 * clean_err
    strong_err, _ = _warp_errors(synthetic_clip(frames=12, size=SIZE, seed=0, artifacts="strong").degraded.frames,
                                 clip.flow, clip.occlusion)
    assert strong_err > degraded_err
    with pytest.raises(ConfigError):
        synthetic_clip(frames=4, size=SIZE, artifacts="nope")


def test_codec_shapes_and_round_trip():
    codec = LatentCodec()
    clip = synthetic_latent_clip(frames=4, size=SIZE, seed=0, latent_noise=0.0)
    latents = codec.encode(clip.scene.frames)
    assert latents.shape == (4, 4, SIZE[1] // 8, SIZE[0] // 8)
    decoded = codec.decode(latents)
    assert decoded.shape == clip.scene.frames.shape
    assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0
    assert _psnr(decoded, clip.scene.frames) > 24.0
    assert float((codec.encode(decoded) - latents).abs().mean()) < 0.1 * float(latents.std())
    assert torch.equal(LatentCodec().mix, codec.mix)  # fixed, not random per instance
    with pytest.raises(ConfigError):
        synthetic_latent_clip(frames=4, size=(100, 64))


def test_latent_noise_adds_temporal_incoherence():
    coherent = synthetic_latent_clip(frames=10, size=SIZE, seed=1, latent_noise=0.0)
    noisy = synthetic_latent_clip(frames=10, size=SIZE, seed=1)
    assert noisy.latents.shape == noisy.clean_latents.shape == (1, 4, 10, SIZE[1] // 8, SIZE[0] // 8)
    assert torch.equal(coherent.degraded.frames, coherent.clean.frames)
    assert torch.equal(noisy.clean.frames, coherent.clean.frames)
    noise = (noisy.latents - noisy.clean_latents)[0].transpose(0, 1).flatten(1)
    correlation = torch.corrcoef(noise)[0, 1:]
    assert float(correlation.abs().max()) < 0.3  # independent from frame to frame
    clean_err, _ = _warp_errors(noisy.clean.frames, noisy.flow, noisy.occlusion)
    noisy_err, _ = _warp_errors(noisy.degraded.frames, noisy.flow, noisy.occlusion)
    assert noisy_err > 2 * clean_err


def test_generator_registry_and_protocol():
    assert "synthetic" in available_generators()
    gen = get_generator("synthetic")
    assert isinstance(gen, Generator) and gen.name == "synthetic"
    assert get_generator(gen) is gen
    out = gen.generate("a red fox", frames=5, size=SIZE, seed=0)
    assert isinstance(out, GeneratedClip) and out.latents is None
    assert out.clip.frames.shape == (5, 3, SIZE[1], SIZE[0])
    assert torch.equal(out.clip.frames, out.ground_truth.degraded.frames)
    again = gen.generate("a red fox", frames=5, size=SIZE, seed=0)
    other = gen.generate("a blue fox", frames=5, size=SIZE, seed=0)
    assert torch.equal(out.clip.frames, again.clip.frames)
    assert not torch.equal(out.clip.frames, other.clip.frames)
    with pytest.raises(ConfigError):
        get_generator("no-such-model")
    with pytest.raises(ConfigError):
        gen.generate("x", frames=4, size=SIZE, seed=0, colour="blue")
    with pytest.raises(ConfigError):
        gen.generate("x", frames=4, size=SIZE, seed=0, callbacks=[lambda *a: {}])


def test_lazy_registration_imports_only_when_built(monkeypatch):
    monkeypatch.setitem(generator_base._REGISTRY, "lazy-test", "generators.synthetic:SyntheticGenerator")
    monkeypatch.setitem(generator_base._REGISTRY, "missing-test", "no_such_package_xyz.module:Thing")
    assert {"lazy-test", "missing-test"} <= set(available_generators())
    assert get_generator("lazy-test").name == "synthetic"
    with pytest.raises(DependencyError):
        get_generator("missing-test")
    with pytest.raises(ConfigError):
        register_generator("bad-test", "not a module path")


def test_latent_generator_applies_step_callbacks():
    gen = get_generator("synthetic", latent=True)
    plain = gen.generate("", frames=6, size=SIZE, seed=2)
    assert plain.latents.shape == (1, 4, 6, SIZE[1] // 8, SIZE[0] // 8) and plain.latent_layout == "BCFHW"
    assert plain.codec is gen.codec
    assert torch.equal(plain.clip.frames, plain.ground_truth.degraded.frames)
    seen = []

    def to_clean(pipe, step, timestep, kwargs):
        seen.append((pipe.num_timesteps, step, tuple(kwargs["latents"].shape)))
        return {"latents": plain.ground_truth.clean_latents}

    fixed = gen.generate("", frames=6, size=SIZE, seed=2, callbacks=[to_clean])
    assert seen == [(1, 0, tuple(plain.latents.shape))]
    assert torch.equal(fixed.clip.frames, plain.ground_truth.clean.frames)
    assert torch.equal(fixed.latents, plain.ground_truth.clean_latents)
    with pytest.raises(ConfigError):
        gen.generate("", frames=4, size=SIZE, seed=0, artifacts="t2v")


def test_latent_blend_option_is_the_blender_callback() -> None:
    from coherence.latent import LatentBlender
    from generators import get_generator

    generator = get_generator("synthetic", latent=True)
    by_option = generator.generate("", frames=6, size=(64, 48), seed=3, latent_blend=0.6)
    by_callback = generator.generate("", frames=6, size=(64, 48), seed=3,
                                     callbacks=[LatentBlender(strength=0.6).on_step_end])
    plain = generator.generate("", frames=6, size=(64, 48), seed=3)
    assert torch.equal(by_option.latents, by_callback.latents)
    assert not torch.equal(by_option.latents, plain.latents)
    with pytest.raises(ConfigError, match="need latents"):
        get_generator("synthetic").generate("", frames=6, size=(64, 48), latent_blend=0.6)
