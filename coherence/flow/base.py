"""The ``FlowEstimator`` protocol and the registry of flow backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

from coherence.errors import ConfigError, InputError


@runtime_checkable
class FlowEstimator(Protocol):
    """Estimates ``flow(a, b)`` for batches of frame pairs.

    ``__call__(a, b)`` takes two ``(N, 3, H, W)`` float32 batches in [0, 1] and returns the ``(N, 2, H, W)``
    flow (x then y, pixels) with ``a(p) ≈ b(p + flow(p))``, on the same device as ``a``.
    """

    name: str
    device: torch.device
    needs_weights: bool

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor: ...


_REGISTRY: dict[str, Callable[..., FlowEstimator]] = {}


def register_flow(name: str) -> Callable[[Callable[..., FlowEstimator]], Callable[..., FlowEstimator]]:
    """Class decorator: make a backend constructible by name through :func:`get_flow`."""

    def decorate(factory: Callable[..., FlowEstimator]) -> Callable[..., FlowEstimator]:
        _REGISTRY[name] = factory
        return factory

    return decorate


def available_flows() -> list[str]:
    """Names of the registered flow backends."""
    return sorted(_REGISTRY)


def get_flow(name: str | FlowEstimator = "dis", **options: Any) -> FlowEstimator:
    """Build a flow backend by name (``dis``, ``farneback``, ``raft-small``, ``raft-large``...).

    An estimator instance is passed through unchanged, so APIs can take either.

    Raises:
        ConfigError: unknown backend name.
    """
    if not isinstance(name, str):
        return name
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ConfigError(f"unknown flow backend {name!r}; choose one of: {', '.join(available_flows())}")
    return factory(**options)


def flow_both_ways(estimator: FlowEstimator, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flow(a, b), flow(b, a))`` for two ``(N, 3, H, W)`` batches in [0, 1], each ``(N, 2, H, W)``.

    A backend with a ``both_ways`` method (the OpenCV ones: each frame is converted once) computes them itself;
    any other gets one batch of ``2N`` pairs.
    """
    both_ways = getattr(estimator, "both_ways", None)
    if both_ways is not None:
        return both_ways(a, b)
    flows = estimator(torch.cat([a, b]), torch.cat([b, a]))
    return flows[: a.shape[0]], flows[a.shape[0]:]


def check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    """Validate two ``(N, 3, H, W)`` batches of the same shape."""
    if a.ndim != 4 or a.shape[1] != 3 or a.shape != b.shape:
        raise InputError(f"flow needs two (N, 3, H, W) batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
