"""CUDA runs of the ops, stages and metrics agree with the CPU within tolerance (skipped without a CUDA GPU)."""

from __future__ import annotations

import importlib.util
import logging
import re
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from coherence.flow import occlusion_mask, warp

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _moving_clip(frames: int = 10, h: int = 64, w: int = 96, seed: int = 0) -> torch.Tensor:
    """``(T, 3, H, W)`` in [0, 1]: a smooth random texture panning about 1.5 px a frame, with mild flicker and noise."""
    gen = torch.Generator().manual_seed(seed)
    texture = F.avg_pool2d(torch.rand(1, 3, h + 8, w + 8 + 2 * frames, generator=gen), 9, 1)[0]
    clip = []
    for t in range(frames):
        shift = 1.5 * t
        x0 = int(shift)
        frame = texture[:, :h, x0:x0 + w] * (1 + 0.05 * (-1) ** t)
        clip.append(frame + 0.01 * torch.randn(3, h, w, generator=gen))
    return torch.stack(clip).clamp_(0, 1)


def test_warp_and_occlusion_agree() -> None:
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 40, 56, generator=gen)
    forward = 4 * torch.randn(2, 2, 40, 56, generator=gen)
    backward = -forward + 0.3 * torch.randn(2, 2, 40, 56, generator=gen)
    assert torch.allclose(warp(image.cuda(), forward.cuda()).cpu(), warp(image, forward), atol=1e-5)
    on_gpu = occlusion_mask(forward.cuda(), backward.cuda()).cpu()
    # thresholds compare floats computed in another order: allow a handful of pixels on the boundary to flip
    assert (on_gpu != occlusion_mask(forward, backward)).float().mean() < 0.005


def test_chroma_filter_agrees(bikes_frame: torch.Tensor) -> None:
    """The chroma filter on the GPU (kornia) is the same filter as the CPU's torch path, and stays near OpenCV's."""
    from coherence.chroma import denoise_chroma, denoise_chroma_torch
    from generators.artifacts import Artifacts, degrade

    noisy = degrade(bikes_frame[None], Artifacts(noise=4 / 255), seed=4)[0]
    on_gpu = denoise_chroma(noisy.cuda(), 4.0)
    assert on_gpu.is_cuda
    assert torch.allclose(on_gpu.cpu(), denoise_chroma_torch(noisy, 4.0), atol=1e-4)
    # the CPU path (OpenCV: the 4 nearest neighbours, not the 3x3 square) differs by far less than the noise
    assert (on_gpu.cpu() - denoise_chroma(noisy, 4.0)).abs().mean() < 0.25 * (noisy - bikes_frame).abs().mean()


def test_graphed_raft_agrees() -> None:
    from torchvision.models import optical_flow

    from coherence.flow.raft_inference import GraphedRAFT, raft_flow

    torch.manual_seed(0)
    model = optical_flow.raft_small().eval().cuda()
    graphed = GraphedRAFT(model, updates=4)
    with torch.inference_mode():
        for size in ((128, 192), (136, 200), (128, 192)):  # a recorded shape is replayed with new frames
            first = torch.rand(2, 3, *size, device="cuda") * 2 - 1
            second = torch.roll(first, (1, 2), dims=(-2, -1))
            expected = raft_flow(model, first, second, 4)
            assert torch.allclose(graphed(first, second), expected, rtol=1e-4, atol=1e-3), size
    assert len(graphed.graphs) == 2


def test_smoother_agrees() -> None:
    from coherence.smooth import Smoother

    clip = _moving_clip()
    cpu = torch.stack(list(Smoother(device="cpu").process(iter(clip), Fraction(24))))
    gpu = torch.stack(list(Smoother(device="cuda").process(iter(clip), Fraction(24)))).cpu()
    assert gpu.shape == cpu.shape and bool(torch.isfinite(gpu).all())
    # OpenCV's remap (CPU) and grid_sample (CUDA) interpolate with different sub-pixel precision
    assert (gpu - cpu).abs().mean() < 1.0 / 255
    assert 10 * torch.log10(1 / (gpu - cpu).square().mean()) > 40


def test_noise_fitted_decay_agrees(caplog: pytest.LogCaptureFixture) -> None:
    """A noisy clip reads the same noise, gets the same decay and the same output on the GPU as on the CPU."""
    from coherence.smooth import smooth
    from generators.artifacts import Artifacts, degrade
    from generators.synthetic import synthetic_clip

    clean = synthetic_clip(frames=12, size=(320, 240), seed=1, artifacts=None).clean.frames
    noisy = degrade(clean, Artifacts(noise=8 / 255), seed=3)
    decays, outputs = {}, {}
    for device in ("cpu", "cuda"):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="coherence.smooth_run"):
            outputs[device] = smooth(noisy, fps=24, device=device).cpu()
        found = re.search(r"trajectory decay (\d\.\d+)", caplog.text)
        assert found is not None, caplog.text
        decays[device] = float(found.group(1))
    assert decays["cpu"] > 0.5 and decays["cuda"] == pytest.approx(decays["cpu"], abs=0.01)
    assert (outputs["cuda"] - outputs["cpu"]).abs().mean() < 1.0 / 255


def test_interpolator_agrees() -> None:
    if importlib.util.find_spec("coherence.interpolate") is None:
        pytest.skip("coherence.interpolate is not in this checkout")
    from coherence.interpolate import Interpolator

    clip = _moving_clip(frames=6)
    cpu = torch.stack(list(Interpolator(factor=2, device="cpu").process(iter(clip), Fraction(24))))
    gpu = torch.stack(list(Interpolator(factor=2, device="cuda").process(iter(clip), Fraction(24)))).cpu()
    assert gpu.shape == cpu.shape
    assert (gpu - cpu).abs().mean() < 1.0 / 255


def test_scores_agree() -> None:
    from coherence.metrics import score

    clip = _moving_clip()
    reference = _moving_clip(seed=1)
    cpu = score(clip, reference, fps=24).metrics
    gpu = score(clip.cuda(), reference.cuda(), fps=24).metrics
    assert cpu.keys() == gpu.keys()
    for name in ("warping_error", "temporal_flickering", "mean_flow", "psnr", "ssim", "motion_smoothness"):
        if name in cpu:
            assert gpu[name] == pytest.approx(cpu[name], rel=0.02, abs=1e-3), name


def test_batch_job_on_cuda(tmp_path) -> None:
    from coherence.batch import BatchOptions, Job, run_job
    from coherence.clip import Clip
    from coherence.io import write_clip

    path = write_clip(Clip(_moving_clip(), Fraction(24), {}), tmp_path / "c.mkv", lossless=True)
    records = [run_job(Job(path=path, output=tmp_path / f"{device}.mkv", options=BatchOptions(
        smooth=True, score=True, device=device), fingerprint=None)) for device in ("cpu", "cuda")]
    assert [r["status"] for r in records] == ["ok", "ok"], records
    # the two smoothed clips differ by under a level on average (test_smoother_agrees) and are quantised to 8 bits;
    # this clip's warping error is about two levels RMS, so such differences move it by up to a tenth
    cpu, gpu = records[0]["metrics"], records[1]["metrics"]
    assert gpu["warping_error"] == pytest.approx(cpu["warping_error"], rel=0.15)
    assert gpu["psnr"] == pytest.approx(cpu["psnr"], abs=0.5)
