"""Optional learned scores, each through its library's standard loading code, never downloaded by us.

- ``lpips`` (Zhang et al. 2018) against the reference, through the ``lpips`` package (AlexNet variant).
- ``subject_consistency`` and ``clip_consistency``: VBench's formula (``vbench/subject_consistency.py`` and
  ``vbench/background_consistency.py``): per frame ``t >= 1`` the mean of the cosine similarities of its image
  feature with frame ``t - 1`` and with frame 0 (each clipped at 0), averaged over frames. Features: DINO
  ViT-B/16 (``facebook/dino-vitb16``) and CLIP ViT-B/32 (``openai/clip-vit-base-patch32``) through
  ``transformers``' ``from_pretrained`` from the local cache only (scoring never reaches the network; fetch
the weights once with ``huggingface-cli download``).

When a package or its weights are unavailable (offline, not installed) the metric is reported as skipped with
one sentence saying why; no value is invented. None of them runs unless asked for by name.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from coherence.errors import ConfigError, DependencyError
from coherence.metrics.base import MetricResult, ScoreContext, nanmean, register_metric

log = logging.getLogger(__name__)

DINO_MODEL = "facebook/dino-vitb16"
CLIP_MODEL = "openai/clip-vit-base-patch32"
_BATCH = 8


@functools.lru_cache(maxsize=2)
def _load_lpips() -> torch.nn.Module:
    try:
        import lpips
    except ImportError as exc:
        raise DependencyError("the lpips package is not installed (pip install lpips)") from exc
    try:
        return lpips.LPIPS(net="alex", verbose=False).eval()
    except Exception as exc:  # noqa: BLE001 - any download/cache failure means the weights are unavailable
        raise DependencyError(f"the LPIPS AlexNet weights are unavailable ({type(exc).__name__})") from exc


@functools.lru_cache(maxsize=2)
def _load_features(kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``(N, 3, H, W)`` in [0, 1] -> ``(N, D)`` image features for ``kind`` in {dino, clip}."""
    try:
        import transformers
    except ImportError as exc:
        raise DependencyError("the transformers package is not installed (pip install transformers)") from exc
    name = DINO_MODEL if kind == "dino" else CLIP_MODEL
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(name, local_files_only=True)
        model_cls = transformers.AutoModel if kind == "dino" else transformers.CLIPModel
        model = model_cls.from_pretrained(name, local_files_only=True).eval()
    except Exception as exc:  # noqa: BLE001 - offline, missing cache or a broken download all mean unavailable
        raise DependencyError(f"the {name} weights are not in the local Hugging Face cache (fetch them once with "
                              f"`huggingface-cli download {name}`)") from exc

    @torch.no_grad()
    def features(frames: torch.Tensor) -> torch.Tensor:
        inputs = processor(images=list(frames.clamp(0, 1)), return_tensors="pt", do_rescale=False)
        if kind == "dino":
            return model(**inputs).last_hidden_state[:, 0]  # the CLS token, as VBench uses
        return model.get_image_features(**inputs)

    return features


def _skipped(exc: DependencyError, frames: torch.Tensor) -> MetricResult:
    return MetricResult(math.nan, None, skipped=str(exc))


@register_metric("lpips", direction="lower", needs_reference=True, default=False)
def lpips_distance(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """Per-frame LPIPS (AlexNet) against the reference; value: the mean."""
    try:
        model = _load_lpips()
    except DependencyError as exc:
        return _skipped(exc, frames)
    if reference is None:
        raise ConfigError("lpips compares against a reference clip: pass one")
    per = torch.empty(frames.shape[0])
    with torch.no_grad():
        for start in range(0, frames.shape[0], _BATCH):
            a = frames[start:start + _BATCH].float() * 2 - 1  # LPIPS takes [-1, 1]
            b = reference[start:start + _BATCH].float() * 2 - 1
            per[start:start + a.shape[0]] = model(a, b).flatten()
    return MetricResult(nanmean(per), per)


def consistency(features: torch.Tensor, cuts: list[int]) -> torch.Tensor:
    """VBench's per-frame consistency of ``(T, D)`` features: ``(max(0, cos(f_t, f_{t-1})) +
    max(0, cos(f_t, f_first))) / 2`` for frames after the first of their scene, ``nan`` elsewhere."""
    feats = F.normalize(features.float(), dim=-1)
    per = torch.full((feats.shape[0],), math.nan)
    first = 0
    for t in range(feats.shape[0]):
        if t in cuts:
            first = t
        if t == first:
            continue
        prev = float((feats[t] * feats[t - 1]).sum().clamp_min(0))
        head = float((feats[t] * feats[first]).sum().clamp_min(0))
        per[t] = (prev + head) / 2
    return per


def _feature_consistency(kind: str, frames: torch.Tensor, context: ScoreContext) -> MetricResult:
    try:
        extract = _load_features(kind)
    except DependencyError as exc:
        return _skipped(exc, frames)
    feats = torch.cat([extract(frames[s:s + _BATCH].float()) for s in range(0, frames.shape[0], _BATCH)])
    per = consistency(feats, context.cuts)
    return MetricResult(nanmean(per), per)


@register_metric("subject_consistency", direction="higher", default=False)
def subject_consistency(frames: torch.Tensor, reference: torch.Tensor | None,
                        context: ScoreContext) -> MetricResult:
    """VBench subject consistency with DINO ViT-B/16 features."""
    return _feature_consistency("dino", frames, context)


@register_metric("clip_consistency", direction="higher", default=False)
def clip_consistency(frames: torch.Tensor, reference: torch.Tensor | None, context: ScoreContext) -> MetricResult:
    """VBench-style consistency (the background-consistency formula) with CLIP ViT-B/32 image features."""
    return _feature_consistency("clip", frames, context)
