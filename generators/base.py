"""The ``Generator`` protocol, what a generator returns, and the registry of generators by name.

A generator turns a prompt into a clip: ``generate(prompt, *, frames, size, seed, callbacks=None, **options)``
returns a :class:`GeneratedClip` (the frames as a :class:`~coherence.clip.Clip`, plus the final latents where the
generator has them, and the ground truth where it knows it, as the synthetic generator does).

Backends register by name with :func:`register_generator`. Optional backends (the diffusers adapters) must not
import their heavy dependencies when their module is imported: their modules are listed in
:data:`BACKEND_MODULES` and imported only when a generator is asked for by name or the list of names is asked
for, and a backend whose module cannot be imported is left out and reported instead of crashing (the
PySceneDetect ``backends/__init__.py`` pattern). A factory may also be registered as a ``"module:attribute"``
string, resolved on first use.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from coherence.clip import Clip
from coherence.errors import ConfigError, DependencyError

logger = logging.getLogger(__name__)

#: Modules that register generators when imported; imported on demand, in this order.
BACKEND_MODULES: tuple[str, ...] = ("generators.synthetic", "generators.diffusers_t2v")

#: A step callback with the signature of diffusers' ``callback_on_step_end``:
#: ``callback(pipeline, step_index, timestep, callback_kwargs) -> dict`` (a returned ``"latents"`` replaces them).
StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class GroundTruth:
    """What a clip should have been, where a generator knows it.

    Attributes:
        clean: the clean clip, frames ``(T, 3, H, W)`` float32 in [0, 1].
        flow: true optical flow ``flow(t, t + 1)`` ``(T - 1, 2, H, W)`` float32 in pixels (x then y), with
            ``frame_t(p) ≈ frame_{t+1}(p + flow(p))``; zero where undefined (across a cut).
        occlusion: ``(T - 1, 1, H, W)`` float32 in {0, 1}; 1 where the surface seen at ``p`` in frame ``t`` is
            hidden or out of frame in frame ``t + 1``, and everywhere across a cut.
        flow_valid: ``(T - 1,)`` bool; False for the pairs that straddle a scene cut.
        cuts: indices of the frames that start a new scene.
    """

    clean: Clip
    flow: torch.Tensor | None = None
    occlusion: torch.Tensor | None = None
    flow_valid: torch.Tensor | None = None
    cuts: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GeneratedClip:
    """The output of a generator.

    Attributes:
        clip: the generated frames ``(T, 3, H, W)`` float32 in [0, 1] with their fps and metadata.
        latents: the final latents when the generator has them, e.g. ``(B, C, F, h, w)`` (ModelScope, AnimateDiff,
            Wan) or ``(B, F, C, h, w)`` (CogVideoX), as named by ``latent_layout``; None otherwise.
        latent_layout: ``"BCFHW"`` or ``"BFCHW"`` when there are latents.
        codec: the encoder/decoder that maps frames to ``latents`` and back, when the generator exposes one.
        ground_truth: the clean clip and its true flow, for synthetic generators; None otherwise.
    """

    clip: Clip
    latents: torch.Tensor | None = None
    latent_layout: str | None = None
    codec: Any = None
    ground_truth: GroundTruth | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """Makes a clip from a prompt.

    ``generate`` honours ``frames`` (count), ``size`` (``(width, height)`` in pixels) and ``seed`` (same seed, same
    clip); ``callbacks`` are step callbacks with diffusers' ``callback_on_step_end`` signature
    (:data:`StepCallback`), called on the latents during generation; ``options`` are backend-specific and an
    unknown one raises :class:`~coherence.errors.ConfigError`.
    """

    name: str

    def generate(self, prompt: str, *, frames: int, size: tuple[int, int], seed: int,
                 callbacks: Sequence[StepCallback] | None = None, **options: Any) -> GeneratedClip: ...


_REGISTRY: dict[str, Callable[..., Generator] | str] = {}
_BACKEND_ERRORS: dict[str, str] = {}
_LOADED = False


def register_generator(name: str, factory: Callable[..., Generator] | str | None = None) -> Any:
    """Register a generator factory under ``name``.

    Use as a class decorator (``@register_generator("modelscope")``) or call it with a factory, which may be a
    ``"package.module:attribute"`` string so that the module is imported only when the generator is built.

    Returns:
        The decorator when ``factory`` is None, else ``factory``.
    """

    def decorate(obj: Callable[..., Generator] | str) -> Callable[..., Generator] | str:
        if isinstance(obj, str) and ":" not in obj:
            raise ConfigError(f"a lazy generator factory must be 'module:attribute', got {obj!r}")
        _REGISTRY[name] = obj
        return obj

    return decorate if factory is None else decorate(factory)


def _load_backends() -> None:
    """Import :data:`BACKEND_MODULES` once; a module that fails to import is recorded, not raised."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in BACKEND_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            # an optional backend (missing module or missing dependency) must not break the others
            _BACKEND_ERRORS[module] = f"{type(exc).__name__}: {exc}"
            logger.debug("generator backend %s not loaded: %s", module, exc)


def available_generators() -> list[str]:
    """Names of the registered generators (after importing the backend modules that can be imported)."""
    _load_backends()
    return sorted(_REGISTRY)


def unavailable_backends() -> dict[str, str]:
    """Backend modules that could not be imported, with the reason (for ``--help`` texts and error messages)."""
    _load_backends()
    return dict(_BACKEND_ERRORS)


def _resolve(name: str, factory: Callable[..., Generator] | str) -> Callable[..., Generator]:
    if not isinstance(factory, str):
        return factory
    module, _, attribute = factory.partition(":")
    try:
        resolved = getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise DependencyError(f"generator {name!r} needs {exc.name or module}, which is not installed "
                              "(pip install 'coherence[diffusers]')") from exc
    except AttributeError as exc:
        raise ConfigError(f"generator {name!r} is registered as {factory!r}, which does not exist") from exc
    _REGISTRY[name] = resolved
    return resolved


def get_generator(name: str | Generator, **options: Any) -> Generator:
    """Build a generator by name (``synthetic``, and the diffusers presets when installed) with ``options``.

    A generator instance is passed through unchanged (then ``options`` must be empty), so APIs can take either.

    Raises:
        ConfigError: unknown name.
        DependencyError: the generator's optional dependency is not installed.
    """
    if not isinstance(name, str):
        if options:
            raise ConfigError("options cannot be applied to an already built generator")
        return name
    _load_backends()
    factory = _REGISTRY.get(name)
    if factory is None:
        missing = "".join(f"; {module} is unavailable ({why})" for module, why in _BACKEND_ERRORS.items()
                          if not why.startswith("ModuleNotFoundError: No module named 'generators."))
        raise ConfigError(f"unknown generator {name!r}; choose one of: {', '.join(available_generators())}"
                          f"{missing}")
    return _resolve(name, factory)(**options)
