"""Text-to-video generators over diffusers pipelines, with flow-guided latent blending in the denoising loop.

Presets name the models people use (ModelScope, Zeroscope, AnimateDiff, CogVideoX, Wan); ``diffusers`` builds any
other video pipeline from its model id and a pipeline class (the generic path). diffusers is imported only when
a pipeline is built (extra ``coherence[diffusers]``), so importing this module is cheap and always succeeds.

Step callbacks have diffusers' ``callback_on_step_end(pipe, step, timestep, callback_kwargs) -> dict``
signature. ``TextToVideoSDPipeline`` (ModelScope/Zeroscope) only has the legacy ``callback(step, timestep,
latents)`` hook, whose latents must be modified in place; the adapter bridges the two.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch

from coherence.clip import Clip
from coherence.codec import VAECodec
from coherence.errors import ConfigError, DependencyError
from coherence.latent import LatentBlender, layout_for_pipeline
from coherence.stage import resolve_device
from generators.base import GeneratedClip, StepCallback, register_generator

logger = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'coherence[diffusers]'"


@dataclass(frozen=True)
class Preset:
    """A named model: where its weights are, which pipeline runs it, and its native settings.

    ``frame_step``: the frame count must be ``k * frame_step + 1`` (temporal VAE compression), 0 if free.
    ``size_multiple``: width and height must be multiples of it.
    """

    model_id: str
    pipeline: str
    size: tuple[int, int]
    frames: int
    fps: int
    steps: int
    guidance_scale: float
    dtype: str = "float16"
    adapter_id: str | None = None
    frame_step: int = 0
    size_multiple: int = 8


PRESETS: dict[str, Preset] = {
    "modelscope": Preset("ali-vilab/text-to-video-ms-1.7b", "TextToVideoSDPipeline", (256, 256), 16, 8, 25, 9.0),
    "zeroscope": Preset("cerspense/zeroscope_v2_576w", "TextToVideoSDPipeline", (576, 320), 24, 8, 40, 9.0),
    # AnimateDiff = an SD 1.5 checkpoint + a motion adapter (diffusers AnimateDiffPipeline docs)
    "animatediff": Preset("emilianJR/epiCRealism", "AnimateDiffPipeline", (512, 512), 16, 8, 25, 7.5,
                          adapter_id="guoyww/animatediff-motion-adapter-v1-5-2"),
    "cogvideox": Preset("THUDM/CogVideoX-2b", "CogVideoXPipeline", (720, 480), 49, 8, 50, 6.0,
                        frame_step=8, size_multiple=16),
    "wan": Preset("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "WanPipeline", (832, 480), 33, 16, 30, 5.0,
                  dtype="bfloat16", frame_step=4, size_multiple=16),
}

_OPTIONS = ("latent_blend", "steps", "guidance_scale", "negative_prompt", "pipeline_kwargs")


def _diffusers() -> Any:
    try:
        return importlib.import_module("diffusers")
    except ImportError as exc:
        raise DependencyError(f"the diffusers generators need diffusers and transformers ({_INSTALL_HINT})") from exc


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _from_pretrained(cls: Any, model_id: str, *, local_files_only: bool | None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` from the local cache first, then (unless offline) from the Hub.

    Raises:
        DependencyError: the weights are neither cached nor downloadable.
    """
    try:
        with warnings.catch_warnings():
            # diffusers >= 0.36 renames torch_dtype to dtype; the old name still works and is what 0.30 knows
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return cls.from_pretrained(model_id, local_files_only=True, **kwargs)
    except OSError:
        if local_files_only or (local_files_only is None and _offline()):
            raise DependencyError(f"the weights of {model_id!r} are not in the local Hugging Face cache and "
                                  "downloads are off: fetch them once with `hf download "
                                  f"{model_id}` where there is network access") from None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return cls.from_pretrained(model_id, local_files_only=False, **kwargs)
    except OSError as exc:
        raise DependencyError(f"the weights of {model_id!r} are not cached and could not be downloaded; fetch "
                              f"them once with `hf download {model_id}` where there is network access") from exc


def _combine(pipe: Any, callbacks: Sequence[StepCallback], legacy: bool) -> dict[str, Any]:
    """The keyword arguments that hook ``callbacks`` into ``pipe`` (modern or legacy hook)."""
    if not callbacks:
        return {}

    def on_step_end(pipe_: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        for callback in callbacks:
            kwargs = {**kwargs, **(callback(pipe_, step, timestep, kwargs) or {})}
        return {"latents": kwargs["latents"]}

    if not legacy:
        return {"callback_on_step_end": on_step_end, "callback_on_step_end_tensor_inputs": ["latents"]}

    def callback(step: int, timestep: Any, latents: torch.Tensor) -> None:
        out = on_step_end(pipe, step, timestep, {"latents": latents})["latents"]
        if out is not latents:
            latents.copy_(out)

    return {"callback": callback, "callback_steps": 1}


class DiffusersGenerator:
    """A text-to-video generator over a diffusers pipeline.

    Args:
        preset: a name in :data:`PRESETS`, or None with ``model_id`` (and optionally ``pipeline_class``).
        model_id: Hugging Face model id or local folder (overrides the preset's).
        pipeline_class: diffusers class name; None uses the preset's or ``DiffusionPipeline`` (auto).
        pipe: an already built pipeline (components in); then nothing is loaded.
        dtype: ``"auto"`` (the preset's on CUDA, float32 on CPU), ``"float16"``, ``"bfloat16"``, ``"float32"``.
        device: ``"auto"`` (CUDA when available) or a torch device.
        offload: ``"none"``, ``"model"`` (accelerate model CPU offload) or ``"sequential"`` (lowest memory).
        local_files_only: True never downloads; None downloads unless ``HF_HUB_OFFLINE`` is set.
    """

    def __init__(
        self,
        preset: str | None = None,
        *,
        model_id: str | None = None,
        pipeline_class: str | None = None,
        pipe: Any = None,
        dtype: str = "auto",
        device: str = "auto",
        offload: str = "none",
        local_files_only: bool | None = None,
    ) -> None:
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"unknown diffusers preset {preset!r}; choose one of {', '.join(PRESETS)}")
        if preset is None and model_id is None and pipe is None:
            raise ConfigError("a diffusers generator needs a preset, a model_id or a pipeline")
        if offload not in ("none", "model", "sequential"):
            raise ConfigError(f"offload must be 'none', 'model' or 'sequential', got {offload!r}")
        if dtype not in ("auto", "float16", "bfloat16", "float32"):
            raise ConfigError(f"dtype must be auto, float16, bfloat16 or float32, got {dtype!r}")
        self.preset = PRESETS.get(preset) if preset else None
        self.name = preset or "diffusers"
        self.model_id = model_id or (self.preset.model_id if self.preset else None)
        self.pipeline_class = pipeline_class or (self.preset.pipeline if self.preset else None)
        self.device = resolve_device(device)
        self.dtype = dtype
        self.offload = offload
        self.local_files_only = local_files_only
        self._pipe = pipe
        if pipe is None:
            _diffusers()  # fail now, in one sentence, if the extra is missing

    def _torch_dtype(self) -> torch.dtype:
        name = self.dtype
        if name == "auto":
            name = (self.preset.dtype if self.preset else "float16") if self.device.type == "cuda" else "float32"
        return getattr(torch, name)

    @property
    def pipe(self) -> Any:
        """The diffusers pipeline, loaded on first use."""
        if self._pipe is None:
            self._pipe = self._load()
        return self._pipe

    def _load(self) -> Any:
        diffusers = _diffusers()
        cls = getattr(diffusers, self.pipeline_class or "DiffusionPipeline", None)
        if cls is None:
            raise ConfigError(f"diffusers {diffusers.__version__} has no pipeline class {self.pipeline_class!r}")
        dtype = self._torch_dtype()
        kwargs: dict[str, Any] = {"torch_dtype": dtype}
        if self.preset is not None and self.preset.adapter_id:
            kwargs["motion_adapter"] = _from_pretrained(diffusers.MotionAdapter, self.preset.adapter_id,
                                                        local_files_only=self.local_files_only, torch_dtype=dtype)
        if self.pipeline_class == "WanPipeline":
            # the Wan VAE is run in float32 (diffusers WanPipeline docs: reduced precision degrades decoding)
            kwargs["vae"] = _from_pretrained(diffusers.AutoencoderKLWan, self.model_id, subfolder="vae",
                                             local_files_only=self.local_files_only, torch_dtype=torch.float32)
        logger.info("loading %s (%s, %s)", self.model_id, cls.__name__, dtype)
        pipe = _from_pretrained(cls, self.model_id, local_files_only=self.local_files_only, **kwargs)
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        vae = getattr(pipe, "vae", None)
        if vae is not None and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
        return pipe

    def _check_shape(self, frames: int, size: tuple[int, int]) -> None:
        step = self.preset.frame_step if self.preset else 0
        multiple = self.preset.size_multiple if self.preset else 8
        if frames < 2 or (step and (frames - 1) % step):
            rule = f"k * {step} + 1, e.g. {step * 4 + 1}" if step else "at least 2"
            raise ConfigError(f"{self.name} generates a number of frames of the form {rule}, got {frames}")
        if size[0] % multiple or size[1] % multiple or min(size) <= 0:
            raise ConfigError(f"{self.name} needs width and height that are multiples of {multiple}, got "
                              f"{size[0]}x{size[1]}")

    def generate(
        self,
        prompt: str,
        *,
        frames: int | None = None,
        size: tuple[int, int] | None = None,
        seed: int = 0,
        callbacks: Sequence[StepCallback] | None = None,
        **options: Any,
    ) -> GeneratedClip:
        """Generate a clip; see :class:`generators.base.Generator` (``frames`` and ``size`` default to the preset's).

        Options: ``latent_blend`` (a strength in [0, 1] or a :class:`~coherence.latent.LatentBlender`),
        ``steps``, ``guidance_scale``, ``negative_prompt``, ``pipeline_kwargs`` (more arguments for the pipeline
        call, e.g. ``{"max_sequence_length": 226}``).

        Returns:
            frames ``(T, 3, H, W)`` float32 in [0, 1] and the final latents (float32, CPU) in the pipeline's layout.
        """
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown option(s) for {self.name}: {', '.join(unknown)}; use {', '.join(_OPTIONS)}")
        frames = frames or (self.preset.frames if self.preset else 16)
        size = size or (self.preset.size if self.preset else (512, 512))
        self._check_shape(frames, size)
        steps = int(options.get("steps") or (self.preset.steps if self.preset else 25))
        pipe = self.pipe
        hooks: list[StepCallback] = list(callbacks or [])
        blend = options.get("latent_blend") or 0.0
        if not isinstance(blend, LatentBlender) and blend:
            blend = LatentBlender(strength=float(blend), num_steps=steps)  # validates the strength
        if isinstance(blend, LatentBlender):
            hooks.append(blend.on_step_end)
        final: dict[str, torch.Tensor] = {}

        def keep_latents(pipe_: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            final["latents"] = kwargs["latents"]
            return {}

        hooks.append(keep_latents)
        parameters = inspect.signature(pipe.__call__).parameters
        legacy = "callback_on_step_end" not in parameters
        call: dict[str, Any] = {
            "prompt": prompt, "num_frames": frames, "height": size[1], "width": size[0],
            "num_inference_steps": steps, "output_type": "pt",
            "generator": torch.Generator("cpu").manual_seed(seed), **_combine(pipe, hooks, legacy),
        }
        guidance = options.get("guidance_scale", self.preset.guidance_scale if self.preset else None)
        if guidance is not None:
            call["guidance_scale"] = float(guidance)
        if options.get("negative_prompt"):
            call["negative_prompt"] = options["negative_prompt"]
        call.update(options.get("pipeline_kwargs") or {})
        output = pipe(**call)
        video = output.frames[0] if hasattr(output, "frames") else output[0][0]
        video = torch.as_tensor(video).float().cpu().clamp(0.0, 1.0)
        fps = Fraction(self.preset.fps if self.preset else 8)
        metadata = {"generator": self.name, "model_id": self.model_id, "prompt": prompt, "seed": seed,
                    "steps": steps, "latent_blend": getattr(blend, "strength", blend)}
        vae = getattr(pipe, "vae", None)
        # a per-frame (2-D) VAE doubles as a codec for post-hoc blending; the 3-D VAEs of CogVideoX/Wan do not
        codec = VAECodec(vae) if vae is not None and type(vae).__name__ in ("AutoencoderKL", "AutoencoderTiny") \
            else None
        latents = final.get("latents")
        return GeneratedClip(
            clip=Clip(video, fps, metadata),
            latents=None if latents is None else latents.detach().float().cpu(),
            latent_layout=None if latents is None else layout_for_pipeline(pipe),
            codec=codec,
            metadata=metadata,
        )


def _preset_factory(name: str) -> Any:
    def factory(**options: Any) -> DiffusersGenerator:
        return DiffusersGenerator(name, **options)

    factory.__name__ = f"{name}_generator"
    return factory


for _name in PRESETS:
    register_generator(_name, _preset_factory(_name))
register_generator("diffusers", DiffusersGenerator)
