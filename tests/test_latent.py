"""Latent blending: the functional core on latents with known motion, both layouts, the schedule, the post-hoc
mode, and the diffusers callbacks inside tiny pipelines with random weights (skipped without diffusers)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_diffusers import moving_latents

from coherence.clip import Clip
from coherence.codec import IdentityCodec
from coherence.errors import ConfigError, InputError
from coherence.latent import LatentBlender, blend_clip, layout_for_pipeline, scheduled_strength, to_frames_first
from coherence.metrics.warping import warping_errors
from generators.base import GroundTruth
from generators.synthetic import SyntheticScene
from generators.synthetic_latent import latent_clip, latents_to_frames


@pytest.fixture(scope="module")
def noisy_moving() -> tuple[torch.Tensor, torch.Tensor]:
    """Clean latents ``(1, 4, 10, 24, 32)`` translating 0.75 px/frame, and the same with independent noise."""
    clean = moving_latents((4, 10, 24, 32), layout="BCFHW", shift=0.75, seed=1)
    noise = 0.4 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    return clean, clean + noise


def test_blending_denoises_along_the_motion(noisy_moving: tuple[torch.Tensor, torch.Tensor]) -> None:
    clean, noisy = noisy_moving
    blender = LatentBlender(strength=0.6)
    flow, confidence = blender.flows(to_frames_first(noisy, "BCFHW")[0])
    trusted = confidence > 0.5
    assert trusted.float().mean() > 0.5
    # the estimated flow follows the true translation (+0.75 px in x, 0 in y) where it is trusted
    assert (flow[:, :1][trusted] - 0.75).abs().median() < 0.2
    assert flow[:, 1:][trusted].abs().median() < 0.2
    out = blender.blend(noisy)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype
    before = (noisy - clean)[:, :, 1:].square().mean()
    after = (out - clean)[:, :, 1:].square().mean()
    assert after < 0.6 * before


def test_occluded_cells_are_left_exactly_as_they_were() -> None:
    # the right half of each frame is replaced by fresh noise: no flow can be trusted there
    lat = moving_latents((4, 6, 24, 32), layout="BCFHW", shift=1.0, seed=3)
    lat[..., 16:] = torch.randn(lat[..., 16:].shape, generator=torch.Generator().manual_seed(4))
    blender = LatentBlender(strength=0.8)
    _, confidence = blender.flows(to_frames_first(lat, "BCFHW")[0])
    out = blender.blend(lat)
    delta = to_frames_first(out - lat, "BCFHW")[0]  # (F, C, h, w)
    assert torch.equal(delta[0], torch.zeros_like(delta[0]))
    untrusted = (confidence == 0).expand(-1, delta.shape[1], -1, -1)
    assert untrusted[..., 16:].float().mean() > 0.5
    assert delta[1:][untrusted].abs().max() == 0
    assert delta[1:][~untrusted].abs().max() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_layouts_agree_and_dtype_is_kept(noisy_moving: tuple[torch.Tensor, torch.Tensor], dtype: torch.dtype) -> None:
    _, noisy = noisy_moving
    noisy = noisy.to(dtype)
    blender = LatentBlender(strength=0.5)
    channels_first = blender.blend(noisy, layout="BCFHW")
    frames_first = blender.blend(noisy.transpose(1, 2).contiguous(), layout="BFCHW")
    assert channels_first.dtype == dtype and frames_first.shape == (1, 10, 4, 24, 32)
    assert torch.equal(frames_first.transpose(1, 2), channels_first)


def test_strength_zero_is_bit_identical(noisy_moving: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, noisy = noisy_moving
    blender = LatentBlender(strength=0.0)
    assert blender.blend(noisy) is noisy
    kept = noisy.clone()
    blender.callback(0, torch.tensor(999), noisy)
    assert torch.equal(noisy, kept)
    assert blender.on_step_end(object(), 0, 999, {"latents": noisy})["latents"] is noisy


def test_schedule_is_strong_early_and_zero_at_the_end() -> None:
    assert scheduled_strength(0.6, 0.0) == pytest.approx(0.6)
    assert scheduled_strength(0.6, 0.5) == pytest.approx(0.3)
    assert scheduled_strength(0.6, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert scheduled_strength(0.6, 0.5, schedule="linear") == pytest.approx(0.3)
    assert scheduled_strength(0.6, 0.7, schedule="constant", stop=0.6) == 0.0
    blender = LatentBlender(strength=0.8, num_steps=5)
    assert [blender.strength_at(s) for s in (0, 4)] == [pytest.approx(0.8), pytest.approx(0.0, abs=1e-12)]
    # without a step count the timestep gives the progress: t = 1000 is the start, t = 0 the end
    halfway = 0.8 * 0.5 * (1 + math.cos(math.pi / 2))
    assert LatentBlender(strength=0.8).strength_at(3, timestep=500) == pytest.approx(halfway)
    with pytest.raises(ConfigError):
        scheduled_strength(0.5, 0.1, schedule="sawtooth")


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        LatentBlender(strength=1.5)
    with pytest.raises(ConfigError):
        LatentBlender(flow_source="decoded")
    with pytest.raises(ConfigError):
        LatentBlender(layout="BHWCF")
    with pytest.raises(InputError):
        LatentBlender().blend(torch.zeros(4, 6, 8, 8))


def test_layout_follows_the_pipeline_class() -> None:
    class CogVideoXPipeline:
        pass

    class WanPipeline:
        pass

    assert layout_for_pipeline(CogVideoXPipeline()) == "BFCHW"
    assert layout_for_pipeline(WanPipeline()) == "BCFHW"


@pytest.mark.parametrize("flow_source, kept", [("latent", 0.5), ("decoded", 0.75)])
def test_synthetic_latent_clip_gets_more_coherent_and_closer_to_the_truth(flow_source: str, kept: float) -> None:
    render = SyntheticScene(128, 96, seed=5).render(12)
    lc = latent_clip(GroundTruth(clean=Clip(render.frames), flow=render.flow, occlusion=render.occlusion), seed=5)
    blender = LatentBlender(strength=0.6, flow_source=flow_source, codec=lc.codec)
    blended = latents_to_frames(blender.blend(lc.latents), lc.codec)
    before = warping_errors(lc.degraded.frames, render.flow, render.occlusion).mean()
    after = warping_errors(blended, render.flow, render.occlusion).mean()
    assert after < kept * before
    assert (blended - lc.clean.frames).square().mean() < (lc.degraded.frames - lc.clean.frames).square().mean()


def test_blend_clip_post_hoc_in_pixel_space() -> None:
    render = SyntheticScene(96, 64, seed=6).render(8)
    noisy = (render.frames + 0.05 * torch.randn(render.frames.shape, generator=torch.Generator().manual_seed(6)))
    noisy = noisy.clamp(0, 1)
    out = blend_clip(noisy, IdentityCodec(), 0.6)
    assert out.shape == noisy.shape and out.dtype == torch.float32
    assert torch.equal(out[0], noisy[0])
    assert (out - render.frames)[1:].square().mean() < (noisy - render.frames)[1:].square().mean()
    assert torch.equal(blend_clip(noisy, IdentityCodec(), 0.0), noisy)


def test_blend_clip_does_not_blend_across_a_scene_cut() -> None:
    first = SyntheticScene(96, 64, seed=12).render(4).frames
    second = SyntheticScene(96, 64, seed=13).render(4).frames
    clip = torch.cat((first, second))
    out = blend_clip(clip, IdentityCodec(), 0.8)
    assert torch.equal(out[4], clip[4])  # the first frame of the new scene is left alone
    assert not torch.equal(out[5], clip[5])


# ---- inside real diffusers pipelines (tiny, random weights, no network) ----


@pytest.fixture(scope="module")
def text_to_video(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("diffusers")
    from tiny_diffusers import tiny_text_to_video

    return tiny_text_to_video(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def cogvideox():
    pytest.importorskip("diffusers")
    from tiny_diffusers import tiny_cogvideox

    return tiny_cogvideox()


def _check_step(before: torch.Tensor, after: torch.Tensor, confidence: torch.Tensor, layout: str) -> None:
    """Frame 0 and every untrusted cell unchanged; some trusted cell changed."""
    delta = to_frames_first(after - before, layout)[0]
    assert delta[0].abs().max() == 0
    untrusted = (confidence == 0).expand(-1, delta.shape[1], -1, -1)
    assert torch.where(untrusted, delta[1:], 0.0).abs().max() == 0
    assert delta[1:][~untrusted].abs().max() > 0


def test_legacy_callback_in_text_to_video_pipeline(text_to_video) -> None:
    blender = LatentBlender(strength=0.6, num_steps=2)
    init = moving_latents((4, 5, 16, 16), layout="BCFHW", seed=7)
    steps = []

    def callback(step: int, timestep, latents: torch.Tensor) -> None:
        before = latents.clone()
        _, confidence = blender.flows(to_frames_first(before, "BCFHW")[0])
        blender.callback(step, timestep, latents)
        steps.append((step, before, latents.clone(), confidence))

    out = text_to_video("a cat", num_frames=5, height=32, width=32, num_inference_steps=2, latents=init.clone(),
                        output_type="latent", callback=callback).frames
    assert out.shape == (1, 4, 5, 16, 16) and out.dtype == torch.float32
    assert [s[0] for s in steps] == [0, 1]
    _, before, after, confidence = steps[0]
    _check_step(before, after, confidence, "BCFHW")
    # the cosine schedule reaches 0 at the last step: those latents pass through bit-identical
    assert torch.equal(steps[1][1], steps[1][2])
    assert torch.equal(out, steps[1][2])


def test_strength_zero_in_text_to_video_pipeline_is_bit_identical(text_to_video) -> None:
    init = moving_latents((4, 5, 16, 16), layout="BCFHW", seed=8)
    run = dict(num_frames=5, height=32, width=32, num_inference_steps=2, output_type="latent")
    plain = text_to_video("a cat", latents=init.clone(), **run).frames
    zero = text_to_video("a cat", latents=init.clone(), callback=LatentBlender(strength=0.0).callback, **run).frames
    assert torch.equal(plain, zero)


def test_step_end_callback_in_cogvideox_pipeline(cogvideox) -> None:
    blender = LatentBlender(strength=0.6)
    init = moving_latents((4, 3, 8, 8), layout="BFCHW", shift=0.5, seed=9)
    steps = []

    def callback(pipe, step: int, timestep, kwargs: dict) -> dict:
        before = kwargs["latents"].clone()
        _, confidence = blender.flows(to_frames_first(before, "BFCHW")[0])
        after = blender.on_step_end(pipe, step, timestep, kwargs)["latents"]
        steps.append((before, after, confidence))
        return {"latents": after}

    run = dict(num_frames=9, height=64, width=64, num_inference_steps=2, guidance_scale=1.0, max_sequence_length=8,
               output_type="latent")
    out = cogvideox("a cat", latents=init.clone(), callback_on_step_end=callback, **run).frames
    assert out.shape == (1, 3, 4, 8, 8) and out.dtype == torch.float32
    assert len(steps) == 2
    _check_step(*steps[0], "BFCHW")
    assert torch.equal(steps[1][0], steps[1][1])
    plain = cogvideox("a cat", latents=init.clone(), **run).frames
    zero = cogvideox("a cat", latents=init.clone(),
                     callback_on_step_end=LatentBlender(strength=0.0).on_step_end, **run).frames
    assert torch.equal(plain, zero)
    assert not torch.equal(plain, out)


def test_vae_codec_round_trip_and_post_hoc_blend(text_to_video) -> None:
    from coherence.codec import VAECodec

    codec = VAECodec(text_to_video.vae)
    frames = SyntheticScene(48, 32, seed=10).render(4).frames
    latents = codec.encode(frames)
    assert latents.shape == (4, 4, 16, 24) and latents.dtype == torch.float32
    decoded = codec.decode(latents)
    assert decoded.shape == frames.shape and 0.0 <= float(decoded.min()) and float(decoded.max()) <= 1.0
    # the codec's latents are the pipeline's: its own decoder (scaling factor included) gives the same frames
    with torch.no_grad():
        video = text_to_video.decode_latents(latents.transpose(0, 1)[None])  # (1, 3, F, H, W) in [-1, 1]
    assert torch.allclose(decoded, ((video[0].transpose(0, 1) + 1) / 2).clamp(0, 1), atol=1e-5)
    out = blend_clip(frames, codec, 0.5)
    assert out.shape == frames.shape and torch.allclose(out[0], decoded[0], atol=1e-5)


def test_tiny_autoencoder_codec() -> None:
    pytest.importorskip("diffusers")
    from diffusers import AutoencoderTiny

    from coherence.codec import VAECodec

    torch.manual_seed(0)
    vae = AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                          num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4).eval()
    codec = VAECodec(vae)
    frames = SyntheticScene(48, 32, seed=11).render(3).frames
    latents = codec.encode(frames)
    assert latents.shape == (3, 4, 16, 24)
    decoded = codec.decode(latents)
    assert decoded.shape == frames.shape and decoded.dtype == torch.float32
    assert 0.0 <= float(decoded.min()) and float(decoded.max()) <= 1.0
