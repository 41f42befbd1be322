"""The generated-clip half of the smoothing benchmark: real text-to-video output, no ground truth.

Every clip under the shared clips folder (``../shared/clips`` beside the checkout, or ``COHERENCE_SHARED_CLIPS``)
is smoothed by each of our presets and by ffmpeg's best chain of the degraded-clip benchmark, in one run.
Per clip and method:

- consistency: warping error (Lai et al. 2018) with the flow and occlusion of the *input*, as the share of the
  input's own warping error removed (``reduction``);
- fidelity: PSNR to the input (nothing may be repainted), and temporal alignment (the share of moving frames
  whose output is nearer input frame ``t`` than ``t - 1`` and ``t + 1``: lagging, averaging or freezing fails).

The issue's target: reduction >= 60% on average with PSNR >= 35 dB on average and alignment >= 0.95 on every clip.

Run: ``python -m benchmarks.smoothing_generated [--out DIR] [--presets a,b]``; writes ``rows.csv`` and
``summary.md`` to ``DIR`` and prints the summary.
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import sys
from pathlib import Path

import torch

from benchmarks.cases import SHARED_CLIPS
from benchmarks.ffmpeg_filters import apply_ffmpeg_filter
from benchmarks.smoothing import BEST_FFMPEG
from coherence.errors import InputError
from coherence.io import read_clip
from coherence.metrics import score
from coherence.metrics.base import ScoreContext
from coherence.smooth import smooth
from coherence.smooth_presets import SMOOTH_PRESETS

log = logging.getLogger(__name__)

SUFFIXES = (".gif", ".mp4")


def clip_paths(root: Path = SHARED_CLIPS) -> list[Path]:
    """The generated clips, sorted (generator folder, then name)."""
    paths = sorted(p for p in root.glob("*/*") if p.suffix.lower() in SUFFIXES)
    if not paths:
        raise InputError(f"no generated clips under {root} (set COHERENCE_SHARED_CLIPS)")
    return paths


def clip_rows(path: Path, presets: list[str]) -> list[dict[str, object]]:
    """One row per method on one clip: reduction of the input-flow warping error, PSNR to input, alignment."""
    clip = read_clip(path)
    frames = clip.frames
    reference = ScoreContext(frames, frames, fps=clip.fps)
    base = score(frames, frames, metrics=["warping_error_ref"], context=reference).metrics["warping_error_ref"]
    outputs = {f"coherence-{p}": smooth(frames, fps=clip.fps, preset=p) for p in presets}
    outputs["ffmpeg-deflicker-hqdn3d"] = apply_ffmpeg_filter(frames, clip.fps, BEST_FFMPEG)[0][: len(frames)]
    rows = []
    for method, out in outputs.items():
        context = ScoreContext(out, frames, fps=clip.fps, reference_context=reference)
        m = score(out, frames, metrics=["warping_error_ref", "psnr", "alignment"], context=context).metrics
        rows.append({"clip": f"{path.parent.name}/{path.name}", "method": method,
                     "reduction": round(1.0 - m["warping_error_ref"] / base, 4), "psnr": round(m["psnr"], 2),
                     "alignment": round(m["alignment"], 3)})
        log.info("%s", rows[-1])
    return rows


def summary(rows: list[dict[str, object]]) -> str:
    """Markdown: per method, mean reduction, mean PSNR, lowest alignment and whether the target holds."""
    lines = ["| method | clips | warping error removed (mean) | PSNR to input (mean) | alignment (lowest) | "
             "target (>= 60%, >= 35 dB, >= 0.95) |", "|---|---|---|---|---|---|"]
    for method in dict.fromkeys(str(r["method"]) for r in rows):
        mine = [r for r in rows if r["method"] == method]
        finite = [float(r["alignment"]) for r in mine if r["alignment"] == r["alignment"]]
        reduction = statistics.mean(float(r["reduction"]) for r in mine)
        psnr = statistics.mean(float(r["psnr"]) for r in mine)
        lowest = min(finite) if finite else float("nan")
        met = reduction >= 0.60 and psnr >= 35.0 and lowest >= 0.95
        lines.append(f"| {method} | {len(mine)} | {100 * reduction:.1f}% | {psnr:.2f} dB | {lowest:.3f} | "
                     f"{'yes' if met else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-smoothing-generated"), help="output folder")
    parser.add_argument("--presets", default=",".join(SMOOTH_PRESETS), help="our presets to run (comma-separated)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    rows: list[dict[str, object]] = []
    for path in clip_paths():
        rows.extend(clip_rows(path, args.presets.split(",")))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "rows.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = summary(rows)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
