"""Frame-coherence metrics: warping error, VBench's scores, fidelity guards and optional learned scores.

``score(frames, reference, fps=...)`` runs several of them sharing one flow estimate per clip; each metric is a
registered function (``available_metrics()``, ``get_metric(name)``, ``register_metric``).
"""

from coherence.metrics import guards as _guards  # noqa: F401  (registers the guards)
from coherence.metrics import learned as _learned  # noqa: F401  (registers lpips, subject/clip consistency)
from coherence.metrics import vbench as _vbench  # noqa: F401  (registers VBench's scores)
from coherence.metrics.base import (
    Metric,
    MetricResult,
    ScoreContext,
    ScoreReport,
    available_metrics,
    consecutive_flows,
    default_metrics,
    get_metric,
    register_metric,
    score,
)
from coherence.metrics.warping import warping_error

__all__ = [
    "Metric",
    "MetricResult",
    "ScoreContext",
    "ScoreReport",
    "available_metrics",
    "consecutive_flows",
    "default_metrics",
    "get_metric",
    "register_metric",
    "score",
    "warping_error",
]
