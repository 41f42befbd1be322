"""RAFT flow backends (Teed & Deng 2020) through torchvision: ``raft-small`` and ``raft-large``.

Weights come only through torchvision's weights API (``Raft_Small_Weights.DEFAULT``...), which caches them in
torch hub's ``checkpoints`` folder; offline, a missing file is reported in one sentence saying which file to
fetch and where to put it. ``weights_path`` loads a local state dict instead. torchvision is imported lazily so
that the rest of coherence does not pay for it.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from coherence.errors import ConfigError, DependencyError, InputError
from coherence.flow.base import check_pair, register_flow
from coherence.flow.raft_inference import GraphedRAFT, raft_flow

log = logging.getLogger(__name__)

_VARIANTS = {"small": ("raft_small", "Raft_Small_Weights"), "large": ("raft_large", "Raft_Large_Weights")}


def _torchvision_flow() -> Any:
    try:
        from torchvision.models import optical_flow
    except ImportError as exc:
        raise DependencyError("the RAFT flow backends need torchvision; install it with `pip install torchvision`") \
            from exc
    return optical_flow


# RAFT's correlation pyramid needs feature maps of at least 16 cells, i.e. 128 input pixels per side
_MIN_SIDE = 128


def pad_to_multiple(batch: torch.Tensor, multiple: int = 8,
                    minimum: int = _MIN_SIDE) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Replicate-pad ``(N, C, H, W)`` on the right and bottom to sizes divisible by ``multiple`` (RAFT's 1/8 grid)
    and at least ``minimum``.

    Returns:
        The padded batch and the ``(left, right, top, bottom)`` padding.
    """
    h, w = batch.shape[-2:]
    pad = (0, max(minimum, w + (-w) % multiple) - w, 0, max(minimum, h + (-h) % multiple) - h)
    if pad == (0, 0, 0, 0):
        return batch, pad
    return F.pad(batch, pad, mode="replicate"), pad


class RAFTFlow:
    """torchvision RAFT as a :class:`coherence.flow.FlowEstimator`.

    Args:
        variant: ``"small"`` or ``"large"``.
        weights_path: a local state dict (``.pth``) to load instead of the torchvision weights.
        pretrained: False builds a randomly initialised model (tests); no weights are read.
        num_flow_updates: RAFT's recurrent refinement iterations (torchvision's default is 12).
        device: torch device of the model and of the returned flows.

    Raises:
        DependencyError: torchvision missing, or the weights are neither cached nor downloadable.
        InputError: ``weights_path`` missing or not a RAFT state dict.
    """

    needs_weights = True

    def __init__(self, *, variant: str = "small", weights_path: str | Path | None = None, pretrained: bool = True,
                 num_flow_updates: int = 12, device: str | torch.device = "cpu") -> None:
        if variant not in _VARIANTS:
            raise ConfigError(f"unknown RAFT variant {variant!r}; choose one of {', '.join(_VARIANTS)}")
        self.name = f"raft-{variant}"
        self.device = torch.device(device)
        optical_flow = _torchvision_flow()
        builder_name, weights_name = _VARIANTS[variant]
        model = getattr(optical_flow, builder_name)(weights=None, progress=False)
        if weights_path is not None:
            model.load_state_dict(_read_state_dict(Path(weights_path)))
        elif pretrained:
            model.load_state_dict(_download(getattr(optical_flow, weights_name).DEFAULT))
        self.model = model.eval().to(self.device)
        self._run = GraphedRAFT(self.model, num_flow_updates) if self.device.type == "cuda" else partial(
            raft_flow, self.model, updates=num_flow_updates)

    @torch.inference_mode()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``flow(a, b)`` ``(N, 2, H, W)`` for ``(N, 3, H, W)`` batches in [0, 1], on ``a``'s device."""
        check_pair(a, b)
        h, w = a.shape[-2:]
        # RAFT's preprocessing (torchvision ``OpticalFlow`` transform): [0, 1] -> [-1, 1]
        pair = torch.cat([a, b]).to(self.device, torch.float32).mul(2.0).sub(1.0)
        pair, _ = pad_to_multiple(pair)
        first, second = pair.chunk(2)
        flow = self._run(first, second)
        return flow[..., :h, :w].to(a.device)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"{path}: the flow weights file does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise InputError(f"{path}: not a readable PyTorch state dict ({exc.__class__.__name__})") from exc
    if not isinstance(state, dict):
        raise InputError(f"{path}: holds a {type(state).__name__}, not a RAFT state dict")
    return state


def _download(weights: Any) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights entry, from torch hub's cache or the network."""
    file_name = weights.url.rsplit("/", 1)[-1]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, HTTPError, socket errors, hash mismatch: all mean "no usable file"
        raise DependencyError(
            f"the RAFT weights {file_name} are not cached and cannot be downloaded ({exc.__class__.__name__}); "
            f"fetch {weights.url} and put it in {folder}, or pass its path with --flow-weights"
        ) from exc


@register_flow("raft-small")
def raft_small(**options: Any) -> RAFTFlow:
    """RAFT small (torchvision ``Raft_Small_Weights.DEFAULT``): 1M parameters."""
    return RAFTFlow(variant="small", **options)


@register_flow("raft-large")
def raft_large(**options: Any) -> RAFTFlow:
    """RAFT large (torchvision ``Raft_Large_Weights.DEFAULT``): 5M parameters, the most accurate."""
    return RAFTFlow(variant="large", **options)
