"""Freed frame buffers stay in the process for the next frame (glibc's thresholds raised)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coherence.allocator import reuse_freed_memory

# as a stage does for each frame: allocate and fill four 640x360 float32 frame buffers, free them, eight times;
# prints the minor page faults that took
_PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "reuse":
    from coherence.allocator import reuse_freed_memory
    assert reuse_freed_memory()
def frame_buffers():
    buffers = [np.ones((3, 360, 640), np.float32) for _ in range(4)]
    del buffers
frame_buffers()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    frame_buffers()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc thresholds")
def test_freed_buffers_are_reused_without_faulting_pages_in_again() -> None:
    default, reused = _faults("default"), _faults("reuse")
    pages = 8 * 4 * (3 * 360 * 640 * 4) // 4096
    # by default the freed buffers go back to the OS and their pages fault in again for the next frame; kept, they
    # come back from the heap with their pages already there
    assert reused * 10 <= default
    assert reused < pages // 20


@pytest.mark.skipif(sys.platform.startswith("linux"), reason="elsewhere nothing is changed")
def test_other_platforms_are_left_alone() -> None:
    assert reuse_freed_memory() is False
