"""Video and image-folder I/O: probe, streaming read, atomic write with audio passthrough."""

from coherence.io.probe import VideoInfo, probe
from coherence.io.reader import read_clip, read_frames
from coherence.io.writer import VideoWriter, output_kind, write_clip

__all__ = ["VideoInfo", "VideoWriter", "output_kind", "probe", "read_clip", "read_frames", "write_clip"]
