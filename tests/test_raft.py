"""RAFT backends: shapes, padding to RAFT's 1/8 grid, local weights, and the offline error (no download)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from coherence.errors import DependencyError, InputError
from coherence.flow import available_flows, get_flow
from coherence.flow.raft import RAFTFlow, pad_to_multiple
from coherence.flow.raft_inference import raft_flow


@pytest.fixture(scope="module")
def tiny_raft() -> RAFTFlow:
    torch.manual_seed(0)
    return RAFTFlow(variant="small", pretrained=False, num_flow_updates=2)


def test_registered() -> None:
    assert {"raft-small", "raft-large"} <= set(available_flows())


@pytest.mark.parametrize("size", [(64, 96), (61, 90)])
def test_flow_shape_any_size(tiny_raft: RAFTFlow, size: tuple[int, int]) -> None:
    a = torch.rand(2, 3, *size)
    flow = tiny_raft(a, torch.roll(a, 2, dims=-1))
    assert flow.shape == (2, 2, *size)
    assert flow.dtype == torch.float32 and torch.isfinite(flow).all()


@pytest.mark.parametrize("variant", ["small", "large"])
def test_inference_matches_torchvision(variant: str) -> None:
    # the model's own forward (grids made on the CPU, every update upsampled) is the reference
    from torchvision.models import optical_flow

    torch.manual_seed(1)
    model = getattr(optical_flow, f"raft_{variant}")().eval()
    first = torch.rand(2, 3, 128, 192) * 2 - 1
    second = torch.roll(first, (2, -3), dims=(-2, -1))
    with torch.inference_mode():
        expected = model(first, second, num_flow_updates=3)[-1]
        flow = raft_flow(model, first, second, 3)
    assert expected.abs().amax() > 0.1  # random weights still give a flow that is not zero
    assert torch.allclose(flow, expected, rtol=1e-5, atol=1e-5)


def test_padding_to_multiple_of_eight() -> None:
    batch = torch.rand(1, 3, 131, 250)
    padded, pad = pad_to_multiple(batch)
    assert padded.shape[-2:] == (136, 256) and pad == (0, 6, 0, 5)
    assert torch.equal(padded[..., :131, :250], batch)
    assert torch.equal(padded[..., 135, :250], batch[..., 130, :])  # replicated border
    same, none = pad_to_multiple(torch.rand(1, 3, 136, 256))
    assert same.shape[-2:] == (136, 256) and none == (0, 0, 0, 0)
    # small frames grow to the 128 pixels the correlation pyramid needs
    assert pad_to_multiple(torch.rand(1, 3, 61, 90))[0].shape[-2:] == (128, 128)


def test_local_weights_path(tmp_path: Path, tiny_raft: RAFTFlow) -> None:
    path = tmp_path / "raft.pth"
    torch.save(tiny_raft.model.state_dict(), path)
    loaded = get_flow("raft-small", weights_path=path, num_flow_updates=2)
    a = torch.rand(1, 3, 32, 40)
    b = torch.roll(a, 1, dims=-2)
    assert torch.allclose(loaded(a, b), tiny_raft(a, b), atol=1e-5)


def test_bad_weights_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        RAFTFlow(weights_path=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="state dict"):
        RAFTFlow(weights_path=junk)


def test_offline_error_names_file_and_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torchvision.models._api as api

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(DependencyError) as info:
        get_flow("raft-large")
    message = str(info.value)
    assert "raft_large_C_T_SKHT_V2-ff5fadd5.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "--flow-weights" in message and "\n" not in message
