"""The diffusers text-to-video adapters: presets, registry, offline weights, and generation through tiny pipelines
with random weights (legacy hook and ``callback_on_step_end``); skipped without diffusers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from coherence.errors import ConfigError, DependencyError
from coherence.latent import LatentBlender


def test_missing_extra_is_one_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from generators.diffusers_t2v import DiffusersGenerator

    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if the extra were not installed
    with pytest.raises(DependencyError, match=r"coherence\[diffusers\]"):
        DiffusersGenerator("zeroscope")


def test_presets_are_registered_without_importing_diffusers() -> None:
    code = ("import sys; from generators.base import available_generators as a; "
            "print(','.join(a())); print('diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    names = out[0].split(",")
    for preset in ("modelscope", "zeroscope", "animatediff", "cogvideox", "wan", "diffusers", "synthetic"):
        assert preset in names
    assert out[1] == "False"


def test_generic_path_needs_a_model() -> None:
    from generators.base import get_generator

    with pytest.raises(ConfigError, match="model_id"):
        get_generator("diffusers")  # neither a preset nor a model id


@pytest.fixture(scope="module")
def text_to_video(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("diffusers")
    from tiny_diffusers import tiny_text_to_video

    return tiny_text_to_video(tmp_path_factory.mktemp("tokenizer"))


def test_weights_missing_offline_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("diffusers")
    from generators.diffusers_t2v import DiffusersGenerator

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = DiffusersGenerator("zeroscope", model_id="coherence-tests/no-such-model", device="cpu")
    with pytest.raises(DependencyError) as info:
        gen.generate("a cat", frames=8, size=(64, 64), seed=0, steps=1)
    message = str(info.value)
    assert "coherence-tests/no-such-model" in message and "\n" not in message


def test_generate_with_blending_through_the_legacy_hook(text_to_video) -> None:
    from coherence.codec import VAECodec
    from generators.diffusers_t2v import DiffusersGenerator

    gen = DiffusersGenerator("modelscope", pipe=text_to_video)
    seen = []

    def record(pipe, step, timestep, kwargs):
        seen.append((step, kwargs["latents"].shape))
        return {}

    run = dict(frames=5, size=(32, 32), seed=3, steps=2, guidance_scale=1.0)
    blended = gen.generate("a cat", callbacks=[record], latent_blend=LatentBlender(strength=0.9, schedule="constant"),
                           **run)
    clip = blended.clip
    assert clip.frames.shape == (5, 3, 32, 32) and clip.frames.dtype == torch.float32
    assert 0.0 <= float(clip.frames.min()) and float(clip.frames.max()) <= 1.0
    assert blended.latents.shape == (1, 4, 5, 16, 16) and blended.latent_layout == "BCFHW"
    assert isinstance(blended.codec, VAECodec)
    assert [s for s, _ in seen] == [0, 1]
    assert clip.metadata["seed"] == 3 and clip.fps == 8
    plain = gen.generate("a cat", **run)
    again = gen.generate("a cat", latent_blend=0.0, **run)
    assert torch.equal(plain.latents, again.latents)  # same seed, same clip; strength 0 changes nothing
    assert not torch.equal(plain.latents, blended.latents)


def test_generate_frames_first_pipeline_and_shape_rules() -> None:
    pytest.importorskip("diffusers")
    from tiny_diffusers import tiny_cogvideox

    from generators.diffusers_t2v import DiffusersGenerator

    gen = DiffusersGenerator("cogvideox", pipe=tiny_cogvideox())
    with pytest.raises(ConfigError, match="k \\* 8 \\+ 1"):
        gen.generate("a cat", frames=10, size=(64, 64), seed=0)
    with pytest.raises(ConfigError, match="multiples of 16"):
        gen.generate("a cat", frames=9, size=(72, 64), seed=0)
    with pytest.raises(ConfigError, match="unknown option"):
        gen.generate("a cat", frames=9, size=(64, 64), seed=0, sampler="euler")
    out = gen.generate("a cat", frames=9, size=(64, 64), seed=0, steps=2, guidance_scale=1.0, latent_blend=0.6,
                       pipeline_kwargs={"max_sequence_length": 8})
    assert out.clip.frames.shape == (9, 3, 64, 64)
    assert out.latents.shape == (1, 3, 4, 8, 8) and out.latent_layout == "BFCHW"
    assert out.codec is None  # a 3-D VAE is not a per-frame codec
