"""Frame sources: the ``Generator`` protocol and registry, the synthetic generator with ground truth, and the
artefact models that make clean clips look generated."""

from generators.artifacts import Artifacts, artifact_preset, degrade, degrade_frame
from generators.base import (
    GeneratedClip,
    Generator,
    GroundTruth,
    StepCallback,
    available_generators,
    get_generator,
    register_generator,
    unavailable_backends,
)
from generators.synthetic import (
    SceneRender,
    SyntheticClip,
    SyntheticGenerator,
    SyntheticScene,
    synthetic_clip,
    synthetic_latent_clip,
)
from generators.synthetic_latent import LatentCodec, LatentSyntheticClip, frames_to_latents, latents_to_frames

__all__ = [
    "Artifacts",
    "GeneratedClip",
    "Generator",
    "GroundTruth",
    "LatentCodec",
    "LatentSyntheticClip",
    "SceneRender",
    "StepCallback",
    "SyntheticClip",
    "SyntheticGenerator",
    "SyntheticScene",
    "artifact_preset",
    "available_generators",
    "degrade",
    "degrade_frame",
    "frames_to_latents",
    "get_generator",
    "latents_to_frames",
    "register_generator",
    "synthetic_clip",
    "synthetic_latent_clip",
    "unavailable_backends",
]
