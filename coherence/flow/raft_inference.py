"""RAFT's inference on a torchvision model, final flow only, with nothing sent back and forth to the host.

torchvision's ``RAFT.forward`` builds its coordinate grid and its correlation window's offsets on the CPU and
copies them to the device, the offsets once per update, and upsamples every update's flow. At 640×360 a GPU
spends most of a pair's time waiting for the hundreds of small kernels to be launched, so the large model costs
little more than the small one. :func:`raft_flow` runs the same modules with the grids made on the device and
upsamples only the last update's flow (the model returns all of them); it gives the same flow to the bit.
:class:`GraphedRAFT` records it once per input shape as a CUDA graph, so that a pair costs one replay: on an H100,
a 640×360 pair both ways took 8.1 ms instead of 20.8 (small) and 16.0 instead of 35.4 (large).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

# graphs kept at once (one per input shape); each holds its own memory pool
_MAX_GRAPHS = 4


def _cell_grid(n: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """``(n, 2, h, w)`` float32 x then y of each cell of RAFT's 1/8 grid. Made afresh, not taken from
    :func:`coherence.flow.ops.base_grid`'s cache: a recorded graph reads it from memory it must own, and the cache
    may drop its tensors."""
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack((cols, rows)).float()[None].repeat(n, 1, 1, 1)


def _window(radius: int, device: torch.device) -> torch.Tensor:
    """``(1, 2r+1, 2r+1, 2)`` offsets of the correlation lookup, in torchvision's order: the first coordinate
    (x) varies along the window's rows (the trained weights expect that layout)."""
    side = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    return torch.stack(torch.meshgrid(side, side, indexing="ij"), dim=-1)[None]


def _lookup(pyramid: list[torch.Tensor], coords: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Correlation features ``(N, levels * (2r+1)², h, w)``: each level of ``pyramid`` (``(N*h*w, 1, h_l, w_l)``)
    sampled around ``coords`` (``(N, 2, h, w)`` cells of level 0), halved from one level to the next, zero outside."""
    n, _, h, w = coords.shape
    centres = coords.permute(0, 2, 3, 1).reshape(n * h * w, 1, 1, 2)
    features = []
    for level in pyramid:
        points = centres + window
        x, y = points.split([1, 1], dim=-1)
        lh, lw = level.shape[-2:]
        # zero outside, and normalised in torchvision's order: flow.ops.sample_at (border, another rounding order)
        # moves a 12-update flow by up to 3e-5 px, and this one gives the model's own flow to the bit
        grid = torch.cat((2 * x / (lw - 1) - 1, 2 * y / (lh - 1) - 1), dim=-1)
        features.append(F.grid_sample(level, grid, mode="bilinear", align_corners=True).view(n, h, w, -1))
        centres = centres / 2
    return torch.cat(features, dim=-1).permute(0, 3, 1, 2).contiguous()


def _upsample(flow: torch.Tensor, mask: torch.Tensor | None, factor: int = 8) -> torch.Tensor:
    """Flow ``(N, 2, h, w)`` on the 1/8 grid to ``(N, 2, 8h, 8w)`` pixels: each fine pixel a convex combination
    of its cell's 3×3 neighbourhood (softmax of ``mask``, ``(N, 9·64, h, w)``), or bilinear without a mask."""
    n, c, h, w = flow.shape
    if mask is None:
        return factor * F.interpolate(flow, size=(h * factor, w * factor), mode="bilinear", align_corners=True)
    weights = torch.softmax(mask.view(n, 1, 9, factor, factor, h, w), dim=2)
    neighbours = F.unfold(factor * flow, kernel_size=3, padding=1).view(n, c, 9, 1, 1, h, w)
    fine = torch.sum(weights * neighbours, dim=2)
    return fine.permute(0, 1, 4, 2, 5, 3).reshape(n, c, h * factor, w * factor)


def raft_flow(model: Any, first: torch.Tensor, second: torch.Tensor, updates: int) -> torch.Tensor:
    """``flow(first, second)`` by a torchvision RAFT model: its last prediction, as ``model(first, second,
    num_flow_updates=updates)[-1]`` gives it.

    Args:
        model: a torchvision ``RAFT`` in eval mode.
        first, second: ``(N, 3, H, W)`` in [-1, 1], ``H`` and ``W`` multiples of 8 (at least 128).
        updates: recurrent refinement iterations.

    Returns:
        ``(N, 2, H, W)`` float32 flow in pixels.
    """
    n, _, h, w = first.shape
    features = model.feature_encoder(torch.cat([first, second]))
    model.corr_block.build_pyramid(*features.chunk(2))
    pyramid = model.corr_block.corr_pyramid
    context = model.context_encoder(first)
    size = model.update_block.hidden_state_size
    hidden, context = torch.split(context, [size, context.shape[1] - size], dim=1)
    hidden, context = torch.tanh(hidden), F.relu(context)
    start = _cell_grid(n, h // 8, w // 8, first.device)
    window = _window(model.corr_block.radius, first.device)
    coords = start
    for _ in range(updates):
        correlation = _lookup(pyramid, coords, window)
        hidden, delta = model.update_block(hidden, context, correlation, coords - start)
        coords = coords + delta
    mask = None if model.mask_predictor is None else model.mask_predictor(hidden)
    return _upsample(coords - start, mask)


class GraphedRAFT:
    """:func:`raft_flow` replayed from CUDA graphs, one recorded per input shape (the first call of a shape
    records it, after one warm-up run on a side stream).

    Recording is local to the calling thread, so other threads may use the GPU meanwhile. Not for concurrent
    calls: the graph's inputs and outputs are fixed tensors, copied in and cloned out.
    """

    def __init__(self, model: Any, updates: int) -> None:
        self.model = model
        self.updates = updates
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """As :func:`raft_flow`, for CUDA tensors."""
        key = tuple(first.shape)
        if key not in self.graphs:
            if len(self.graphs) >= _MAX_GRAPHS:
                del self.graphs[next(iter(self.graphs))]
            self.graphs[key] = self._record(first, second)
        graph, static_first, static_second, static_flow = self.graphs[key]
        static_first.copy_(first)
        static_second.copy_(second)
        graph.replay()
        return static_flow.clone()

    def _record(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor,
                                                                          torch.Tensor, torch.Tensor]:
        static_first, static_second = first.clone(), second.clone()
        side = torch.cuda.Stream(first.device)
        side.wait_stream(torch.cuda.current_stream(first.device))
        with torch.cuda.stream(side):
            raft_flow(self.model, static_first, static_second, self.updates)
        torch.cuda.current_stream(first.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_flow = raft_flow(self.model, static_first, static_second, self.updates)
        return graph, static_first, static_second, static_flow
