"""Optical flow: the ``FlowEstimator`` protocol, its registry, backends and the ops that use flow."""

from coherence.flow import dis as _dis  # noqa: F401  (registers dis, farneback)
from coherence.flow import raft as _raft  # noqa: F401  (registers raft-small, raft-large; torchvision lazily)
from coherence.flow.base import FlowEstimator, available_flows, flow_both_ways, get_flow, register_flow
from coherence.flow.ops import compose_flow, flow_magnitude, occlusion_mask, out_of_frame, resize_flow, warp

__all__ = [
    "FlowEstimator",
    "available_flows",
    "compose_flow",
    "flow_both_ways",
    "flow_magnitude",
    "get_flow",
    "occlusion_mask",
    "out_of_frame",
    "register_flow",
    "resize_flow",
    "warp",
]
