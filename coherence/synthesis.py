"""One frame between two, from their bidirectional flows: the synthesis step of :mod:`coherence.interpolate`.

Bidirectional flow ``F_01 = flow(a, b)``, ``F_10 = flow(b, a)`` is splatted forward to time ``t`` with softmax
weights from brightness constancy (:func:`motion_at`: Baker et al. 2011's flow forward warping with Niklaus &
Liu 2020's softmax splatting), so that where surfaces overlap the visible one moves the pixel and revealed
areas follow the frame that sees them; pixels nothing reaches fall back to Super SloMo's linear approximation
(Jiang et al. 2018, eq. 4, :func:`intermediate_flows`). Where the frames before ``a`` and after ``b`` are known,
each pixel moves on a parabola instead of a line (Xu et al. 2019, "Quadratic Video Interpolation", eq. 1-3):
its acceleration comes from its flows to both neighbours (:func:`acceleration`), so motion that speeds up, slows
down or turns lands where it really is at ``t`` (x2 on the benchmark clips: +0.19 dB on bikes, +0.54 on bunny,
+0.10 to +0.72 on the CogVideoX clips). Both frames are then warped to ``t`` with bicubic
sampling and blended with weights ``1 - t`` and ``t`` (:func:`warp_blend`), falling back towards the plain blend
of the two frames where the warped frames disagree more than the unwarped ones (:func:`compensated_share`).
(Weighting the blend by the frames' forward-backward consistency lost 0.1-0.2 dB on the real benchmark clips, so
the blend is not.)
The motion is found at a quarter of the resolution (:func:`coarse_pair`), the frames are warped at full size.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from coherence.deflicker import resize
from coherence.errors import InputError
from coherence.flow import resize_flow, warp
from coherence.flow.ops import base_grid, occlusion_mask, pixel_grid, scaled_size


def intermediate_flows(flow_ab: torch.Tensor, flow_ba: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows ``(F_t0, F_t1)`` from time ``t`` in [0, 1] back to ``a`` and on to ``b`` (Super SloMo eq. 4), from
    ``flow(a, b)`` and ``flow(b, a)``; all ``(N, 2, H, W)`` pixels. ``warp(a, F_t0)``, ``warp(b, F_t1)`` sit at ``t``.
    """
    flow_t0 = -(1 - t) * t * flow_ab + t * t * flow_ba
    flow_t1 = (1 - t) * (1 - t) * flow_ab - t * (1 - t) * flow_ba
    return flow_t0, flow_t1


def splat(values: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Forward (summation) splatting: add each pixel's ``values`` ``(N, C, H, W)`` bilinearly at ``p + flow(p)``
    (``flow`` ``(N, 2, H, W)`` pixels); returns the ``(N, C, H, W)`` sums, targets outside the frame dropped."""
    n, c, h, w = values.shape
    grid = base_grid(h, w, flow.device, flow.dtype)[0]
    x, y = grid[0] + flow[:, 0], grid[1] + flow[:, 1]
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    offset = (torch.arange(n, device=flow.device) * (h * w)).view(n, 1, 1)
    rows = values.permute(0, 2, 3, 1).reshape(-1, c)
    out = values.new_zeros(n * h * w, c)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1) + offset).reshape(-1)
        out.index_add_(0, index, rows * (weight * inside).reshape(-1, 1))
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def acceleration(flow_on: torch.Tensor, flow_back: torch.Tensor, flow_return: torch.Tensor, *,
                 ratio: float = 1.0, grid_step: float = 1.0) -> torch.Tensor:
    """A frame's trajectories' second difference, from its flows to the frames on either side: ``A`` such that a
    pixel is at ``p + s F_on - s (1 - s) A / 2`` a fraction ``s`` of the way to the next frame (0 where the
    previous frame's match fails the forward-backward test, :func:`~coherence.flow.ops.occlusion_mask`: there is
    no trajectory to bend).

    With the previous frame ``ratio`` times as far away as the next, the parabola through the three positions
    gives ``A = 2 (ratio F_on + F_back) / (ratio (ratio + 1))`` (QVI's ``F_01 + F_0-1`` at equal spacing).

    Args:
        flow_on: ``(N, 2, h, w)`` flow from the frame to the next one (in the direction of synthesis), pixels.
        flow_back: ``(N, 2, h, w)`` flow from the frame to the previous one.
        flow_return: ``(N, 2, h, w)`` flow from the previous frame back to the frame.
        ratio: time to the previous frame over time to the next (1 for evenly spaced frames).
        grid_step: frame pixels per pixel of the flows' grid, so that the test keeps the frame's thresholds (on
            the quarter-size grid of :func:`coarse_pair` this test gained 0.1 dB over the grid's own thresholds).

    Returns:
        ``(N, 2, h, w)`` pixels.
    """
    consistent = 1.0 - occlusion_mask(flow_back, flow_return, grid_step=grid_step)
    return (ratio * flow_on + flow_back).mul_(consistent * (2.0 / (ratio * (ratio + 1.0))))


def motion_at(a: torch.Tensor, b: torch.Tensor, t: float, *, flow_ab: torch.Tensor, flow_ba: torch.Tensor,
              alpha: float = 20.0, accelerations: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows ``(F_t0, F_t1)`` from time ``t`` to ``a`` and to ``b``, occlusion-aware.

    Each frame's pixels are splatted forward to time ``t`` (``a``'s by ``t F_ab``, ``b``'s by ``(1 - t) F_ba``,
    bent by their :func:`acceleration` where given), carrying their flows from ``t`` back to their own frame and
    on to the other, as in Baker et al. 2011 (Middlebury interpolation, flow forward warping), merged with
    softmax splatting weights ``exp(-alpha |a - warp(b, F_ab)|)`` (Niklaus & Liu 2020, eq. 5-6 with the
    brightness-constancy metric): where two surfaces land on one pixel, the one whose motion is photo-consistent,
    i.e. visible in both frames, wins, so occluded and revealed areas take the motion of the surface that sees
    them. Pixels that nothing reaches take the Super SloMo approximation.

    Args:
        a, b: ``(N, 3, H, W)`` float32 in [0, 1].
        t: time in (0, 1).
        flow_ab, flow_ba: ``(N, 2, H, W)`` pixels.
        alpha: sharpness of the softmax weight (per unit of mean absolute colour error).
        accelerations: ``a``'s (towards ``b``) and ``b``'s (towards ``a``), ``(N, 2, H, W)`` or ``None`` for a
            straight path.

    Returns:
        ``(F_t0, F_t1)``, each ``(N, 2, H, W)``.
    """
    n = a.shape[0]
    aligned = warp(torch.cat((b, a)), torch.cat((flow_ab, flow_ba)))
    scores = torch.exp(-alpha * (torch.cat((a, b)) - aligned).abs().mean(1, keepdim=True))
    score_a, score_b = scores[:n], scores[n:]
    ones = torch.ones_like(score_a)
    bend = t * (1 - t) / 2
    to_t_a, to_t_b = t * flow_ab, (1 - t) * flow_ba
    if accelerations[0] is not None:
        to_t_a = to_t_a - bend * accelerations[0]
    if accelerations[1] is not None:
        to_t_b = to_t_b - bend * accelerations[1]
    # one splat for both frames: stack them along the batch, then add the two halves
    values = torch.cat((torch.cat((-to_t_a * score_a, (flow_ab - to_t_a) * score_a, score_a, ones), 1),
                        torch.cat(((flow_ba - to_t_b) * score_b, -to_t_b * score_b, score_b, ones), 1)))
    splatted = splat(values, torch.cat((to_t_a, to_t_b)))
    total = splatted[:n] + splatted[n:]
    weight = total[:, 4:5]
    # coverage below 1/2 (holes, frame borders) fades to the linear approximation
    reached = (total[:, 5:6] * 2).clamp(0, 1) * (weight > 1e-8)
    approx_t0, approx_t1 = intermediate_flows(flow_ab, flow_ba, t)
    motion = total[:, :4] * (reached / weight.clamp_min(1e-12))
    return motion[:, :2] + (1 - reached) * approx_t0, motion[:, 2:] + (1 - reached) * approx_t1


def interpolate_pair(a: torch.Tensor, b: torch.Tensor, t: float, *, flow_ab: torch.Tensor, flow_ba: torch.Tensor,
                     alpha: float = 20.0, motion_scale: float = 0.25, mode: str = "bicubic") -> torch.Tensor:
    """Synthesise the frame at time ``t`` between ``a`` (t = 0) and ``b`` (t = 1).

    The flows to time ``t`` come from :func:`motion_at`; both frames are warped there and blended with weights
    ``1 - t`` and ``t``.

    Args:
        a, b: ``(3, H, W)`` or ``(N, 3, H, W)`` float32 frames in [0, 1].
        t: time in [0, 1].
        flow_ab: ``flow(a, b)``, ``(2, H, W)`` or ``(N, 2, H, W)``, pixels.
        flow_ba: ``flow(b, a)``, same shape as ``flow_ab``.
        alpha: softmax splatting sharpness (:func:`motion_at`).
        motion_scale: resolution of the flows to time ``t`` relative to the frames (splatting is the costly
            step and the flows are smooth: a quarter of the resolution lost under 0.02 dB on the benchmark clips
            for a sixteenth of the splatting work).
        mode: sampling of the warp: ``"bicubic"`` (sharp; bilinear blurs sub-pixel shifts, about 1 dB on
            sharp content) or ``"bilinear"``.

    Returns:
        The frame at ``t``, shaped like ``a``, float32 in [0, 1].

    Raises:
        InputError: shapes disagree or ``t`` is outside [0, 1].
    """
    if not 0.0 <= t <= 1.0:
        raise InputError(f"interpolation time must be in [0, 1], got {t}")
    single = a.ndim == 3
    if single:
        a, b, flow_ab, flow_ba = a[None], b[None], flow_ab[None], flow_ba[None]
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3 or flow_ab.shape != flow_ba.shape \
            or flow_ab.shape[-2:] != a.shape[-2:] or flow_ab.shape[:2] != (a.shape[0], 2):
        raise InputError(f"interpolate_pair needs frames (N, 3, H, W) and flows (N, 2, H, W) of one size, got "
                         f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(flow_ab.shape)}, {tuple(flow_ba.shape)}")
    if t in (0.0, 1.0):
        out = a if t == 0.0 else b
    else:
        coarse = coarse_pair(a, b, flow_ab=flow_ab, flow_ba=flow_ba, motion_scale=motion_scale)
        out = synthesise(a, b, t, coarse, alpha=alpha, mode=mode)
    return out[0] if single else out


def coarse_pair(a: torch.Tensor, b: torch.Tensor, *, flow_ab: torch.Tensor, flow_ba: torch.Tensor,
                motion_scale: float = 0.25) -> tuple[torch.Tensor, ...]:
    """Frames ``(N, 3, H, W)`` and flows ``(N, 2, H, W)`` at ``motion_scale`` of the size (at least 8 pixels):
    ``(a, b, flow_ab, flow_ba)`` at ``(h, w)``, frames area-averaged, flows resized and rescaled."""
    size = a.shape[-2:]
    small = scaled_size(size[0], size[1], motion_scale)
    if small[0] >= size[0] or small[1] >= size[1]:
        return a, b, flow_ab, flow_ba
    return (resize(a, small, mode="area"), resize(b, small, mode="area"), resize_flow(flow_ab, small),
            resize_flow(flow_ba, small))


def synthesise(a: torch.Tensor, b: torch.Tensor, t: float, coarse: tuple[torch.Tensor, ...], *, alpha: float,
                mode: str, accelerations: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
                ) -> torch.Tensor:
    """Frame ``(N, 3, H, W)`` at ``t`` from full-size ``a``, ``b``, their :func:`coarse_pair` and, where known,
    their :func:`acceleration` on its grid."""
    flow_t0, flow_t1 = motion_at(coarse[0], coarse[1], t, flow_ab=coarse[2], flow_ba=coarse[3], alpha=alpha,
                                 accelerations=accelerations)
    return warp_blend(a, b, t, flow_t0, flow_t1, mode=mode, check=check_window(*a.shape[-2:]))


_CV2_MODES = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}
# the motion-compensation check's window, as a fraction of the frame's long side (17 pixels at 640)
CHECK_FRACTION = 1 / 40
_CHANNEL_MEAN = np.full((1, 3), 1 / 3, np.float32)


def check_window(height: int, width: int) -> int:
    """Odd side in pixels of the window over which :func:`warp_blend` checks its motion compensation for a
    ``height x width`` frame (1, a per-pixel check, where the long side is 40 pixels or less)."""
    return 2 * round(max(height, width) * CHECK_FRACTION / 2) + 1


def _compensated_share(warped: tuple[np.ndarray, np.ndarray], plain: tuple[np.ndarray, np.ndarray],
                       window: int) -> np.ndarray:
    """OpenCV form of :func:`compensated_share` for one channels-last ``(H, W, 3)`` pair of each; ``(H, W)``."""
    h, w = warped[0].shape[:2]
    half, box = (max(1, w // 2), max(1, h // 2)), window // 2 | 1

    def smooth(x: np.ndarray) -> np.ndarray:
        return cv2.blur(x, (box, box), borderType=cv2.BORDER_REPLICATE)

    def disagreement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return smooth(cv2.resize(cv2.transform(cv2.absdiff(x, y), _CHANNEL_MEAN), half, interpolation=cv2.INTER_AREA))

    better = (disagreement(*warped) <= disagreement(*plain)).astype(np.float32)
    return cv2.resize(smooth(better), (w, h), interpolation=cv2.INTER_LINEAR)


def compensated_share(warped_a: torch.Tensor, warped_b: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                      window: int) -> torch.Tensor:
    """How much of the motion-compensated frame to keep, per pixel, against the plain blend of ``a`` and ``b``.

    The mode decision of motion-adaptive frame-rate converters: where, over a ``window``-pixel box, the two warped
    frames disagree more than the unwarped ones do, the flow explains nothing there (the flows of dithered,
    boiling or noisy texture) and its sub-pixel warps only resample the texture, so the plain blend is the better
    guess; elsewhere, and wherever anything moves, the warped frames agree far better. The absolute differences
    are taken at full resolution (dither lives there), then area-averaged to half size, where the boxes and the
    choice run; the binary choice is averaged over the same box, so it changes smoothly. ×2 on the generated GIF
    clips of ``benchmarks.interpolation --gifs``: up to +3.3 dB (VideoCrafter2); on the real clips -0.02 to
    +0.2 dB.

    Args:
        warped_a, warped_b: ``(N, 3, H, W)`` the frames warped to the output time.
        a, b: ``(N, 3, H, W)`` the frames themselves.
        window: odd box side in pixels of the frame.

    Returns:
        ``(N, 1, H, W)`` in [0, 1].
    """
    h, w = a.shape[-2:]
    half, box = (max(1, h // 2), max(1, w // 2)), window // 2 | 1

    def smooth(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, [box // 2] * 4, mode="replicate"), box, stride=1)

    def disagreement(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return smooth(F.interpolate((x - y).abs().mean(1, keepdim=True), size=half, mode="area"))

    better = (disagreement(warped_a, warped_b) <= disagreement(a, b)).to(a.dtype)
    return F.interpolate(smooth(better), size=(h, w), mode="bilinear", align_corners=False)


def warp_blend(a: torch.Tensor, b: torch.Tensor, t: float, flow_t0: torch.Tensor, flow_t1: torch.Tensor, *,
               mode: str = "bicubic", check: int = 0) -> torch.Tensor:
    """``(1 - t) warp(a, F_t0) + t warp(b, F_t1)``, clamped to [0, 1]; with ``check`` (an odd window in pixels),
    mixed per pixel with the plain blend ``(1 - t) a + t b`` by :func:`compensated_share`.

    The flows may be coarser than the frames; they are upsampled as :func:`~coherence.flow.resize_flow` does
    (bilinear, corners aligned, vectors scaled). On the CPU (float32, bicubic or bilinear) OpenCV does the work:
    ``cv2.remap`` samples with the same cubic kernel (Keys, a = -0.75) and clamped-border taps as
    ``grid_sample(..., padding_mode="border", align_corners=True)``, on a 1/32-pixel grid, in about 40 % of the
    time of single-threaded ``grid_sample`` at 640×360. Frames ``a``, ``b``: ``(N, 3, H, W)`` float in [0, 1];
    flows ``(N, 2, h, w)`` from time ``t`` to ``a`` and to ``b`` in pixels of their grid; ``mode``: ``"bicubic"``,
    ``"bilinear"`` (or ``"nearest"``, off the OpenCV path). Returns ``(N, 3, H, W)`` float32 in [0, 1] (on the
    OpenCV path a channels-last view: ``.permute(0, 2, 3, 1)`` of it is contiguous, as the video writer wants).
    """
    n, _, h, w = a.shape
    if a.device.type != "cpu" or a.dtype != torch.float32 or mode not in _CV2_MODES:
        warped = warp(torch.cat((a, b)), resize_flow(torch.cat((flow_t0, flow_t1)), (h, w)), mode=mode)
        out = (1 - t) * warped[:n] + t * warped[n:]
        if check:
            plain = (1 - t) * a + t * b
            out = plain + compensated_share(warped[:n], warped[n:], a, b, check) * (out - plain)
        return out.clamp_(0, 1)
    hs, ws = flow_t0.shape[-2:]
    scale = torch.tensor([(w - 1) / max(ws - 1, 1), (h - 1) / max(hs - 1, 1)] * 2).view(1, 4, 1, 1)
    small = (torch.cat((flow_t0, flow_t1), 1).float() * scale).permute(0, 2, 3, 1).contiguous().numpy()
    # corners aligned: output pixel x reads the coarse grid at x (ws - 1) / (w - 1)
    affine = np.float32([[(ws - 1) / max(w - 1, 1), 0, 0], [0, (hs - 1) / max(h - 1, 1), 0]])
    (xs, ys), interpolation = pixel_grid(h, w), _CV2_MODES[mode]
    a, b = a.contiguous(), b.contiguous()
    # channels last: one remap samples the three channels with one set of kernel weights per pixel (about a
    # quarter faster than three plane remaps, same values); the result is returned as a permuted view
    out = np.empty((n, h, w, 3), np.float32)
    for i in range(n):
        up = small[i] if (hs, ws) == (h, w) else cv2.warpAffine(
            small[i], affine, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        frames = cv2.merge(list(a[i].numpy())), cv2.merge(list(b[i].numpy()))
        warped_a, warped_b = (cv2.remap(frame, xs + up[..., k], ys + up[..., k + 1], interpolation,
                                        borderMode=cv2.BORDER_REPLICATE) for frame, k in zip(frames, (0, 2)))
        cv2.addWeighted(warped_a, 1 - t, warped_b, t, 0.0, dst=out[i])
        if check:
            plain = cv2.addWeighted(frames[0], 1 - t, frames[1], t, 0.0)
            share = _compensated_share((warped_a, warped_b), frames, check)
            # plain + share (compensated - plain), in OpenCV (numpy's broadcasting over channels is 10x slower)
            cv2.subtract(out[i], plain, dst=out[i])
            cv2.multiply(out[i], cv2.merge((share, share, share)), dst=out[i])
            cv2.add(out[i], plain, dst=out[i])
    return torch.from_numpy(out.clip(0, 1, out=out)).permute(0, 3, 1, 2)
