"""Frame-coherence metrics: warping error, VBench-style scores and fidelity guards."""

from coherence.metrics.warping import consecutive_flows, warping_error

__all__ = ["consecutive_flows", "warping_error"]
