"""``coherence bench``: every method of :mod:`benchmarks.methods` on every case of :mod:`benchmarks.suite`.

Each case is decoded once; its reference's flows are estimated once and shared by the scoring of every method.
Per row: the suite's metrics against the reference, the verdict (stability gained AND fidelity kept), speed
(frames per second, ratio to ffmpeg's deflicker on the same case) and peak extra resident memory of the process
while the method ran (ffmpeg's own memory, in its subprocess, is not counted).

Cases with ground truth also run the frame-drop interpolation benchmark (:mod:`benchmarks.frame_drop`) on their
clean clip (the first one only with ``--quick``).

Outputs in ``--out``: ``results.json`` (every row and the summary), ``cases/<case>.csv|json``, ``summary.md``,
``gain_vs_fidelity.png``, ``clips/<case>.gif`` (input | ours, side by side) and a self-contained ``report.html``.

Run ``python -m benchmarks.runner --quick`` or ``coherence bench --quick``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import logging
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.frame_drop import frame_drop_rows
from benchmarks.methods import Method, all_methods
from benchmarks.suite import SUITE_METRICS, Case, all_cases, verdict
from coherence.metrics import ScoreContext, score
from coherence.report import write_side_by_side

log = logging.getLogger(__name__)

SPEED_BASELINE = "ffmpeg_deflicker"
SHOWCASE = "ours_default"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        return 0


class PeakMemory:
    """Samples the process's resident memory every 10 ms while active; ``extra_mb`` is the peak above the start."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._start = self._peak = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, _rss())

    def __enter__(self) -> PeakMemory:
        self._start = self._peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss())

    @property
    def extra_mb(self) -> float:
        return (self._peak - self._start) / 2**20


def _round(x: float) -> float | None:
    return round(x, 6) if isinstance(x, float) and math.isfinite(x) else (x if not isinstance(x, float) else None)


def run_case(case: Case, methods: Sequence[Method], *, clips_dir: Path | None = None) -> list[dict[str, object]]:
    """Run and score every method on one case; rows in method order (the input first)."""
    ref_ctx = ScoreContext(case.reference, fps=case.fps)
    rows: list[dict[str, object]] = []
    base: dict[str, float] | None = None
    for method in methods:
        with PeakMemory() as memory:
            out, seconds = method.run(case.frames, case.fps)
        if out.shape != case.frames.shape:
            log.warning("%s changed the shape of %s (%s); skipped", method.name, case.name, tuple(out.shape))
            continue
        ctx = ScoreContext(out, case.reference, fps=case.fps, reference_context=ref_ctx)
        values = score(out, metrics=SUITE_METRICS, context=ctx).metrics
        if base is None:
            base = values
        gain, failed, combined = verdict(values, base, has_truth=case.has_truth)
        rows.append({"case": case.name, "group": case.group, "method": method.name, "kind": method.kind,
                     "frames": int(out.shape[0]), "size": f"{out.shape[-1]}x{out.shape[-2]}", **values,
                     "delta_psnr": values["psnr"] - base["psnr"], "stability_gain": gain,
                     "failed": ",".join(failed), "combined": combined, "seconds": seconds,
                     "fps": out.shape[0] / seconds if seconds > 0 else math.nan, "peak_mb": memory.extra_mb})
        if clips_dir is not None and method.name == SHOWCASE:
            write_side_by_side(iter(case.frames), iter(out), clips_dir / f"{case.name}.gif", fps=case.fps,
                               labels=("input", method.name))
    speed_ref = next((r["fps"] for r in rows if r["method"] == SPEED_BASELINE), math.nan)
    for row in rows:
        row["speed_vs_ffmpeg"] = row["fps"] / speed_ref if speed_ref and math.isfinite(speed_ref) else math.nan
    return rows


def summarise(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """One row per method: means over cases of gain, PSNR change, combined score; pass rate; speed; memory."""
    def mean(values: list[float]) -> float:
        kept = [v for v in values if isinstance(v, float | int) and math.isfinite(v)]
        return statistics.fmean(kept) if kept else math.nan

    summary = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        truth = [r for r in mine if r["group"] != "generated"]
        summary.append({
            "method": method, "kind": mine[0]["kind"], "cases": len(mine),
            "stability_gain": mean([r["stability_gain"] for r in mine]),
            "temporal_flickering": mean([r["temporal_flickering"] for r in mine]),
            "delta_psnr_truth": mean([r["delta_psnr"] for r in truth]),
            "ssim": mean([r["ssim"] for r in mine]),
            "alignment": mean([r["alignment"] for r in mine]),
            "freeze_rate": mean([r["freeze_rate"] for r in mine]),
            "pass_rate": mean([0.0 if r["failed"] else 1.0 for r in mine]),
            "combined": mean([r["combined"] for r in mine]),
            "fps": mean([r["fps"] for r in mine]),
            "speed_vs_ffmpeg": statistics.median([r["speed_vs_ffmpeg"] for r in mine]),
            "peak_mb": max(float(r["peak_mb"]) for r in mine),
            "failed": ", ".join(sorted({g for r in mine for g in str(r["failed"]).split(",") if g})),
        })
    return summary


_COLUMNS = [("method", "method", None), ("kind", "kind", None), ("cases", "cases", None),
            ("combined", "combined ↑", 3), ("stability_gain", "stability gain ↑", 3),
            ("delta_psnr_truth", "ΔPSNR vs truth (dB) ↑", 2), ("temporal_flickering", "VBench flicker ↑", 4),
            ("ssim", "SSIM ↑", 3), ("alignment", "alignment ↑", 2), ("freeze_rate", "freeze ↓", 2),
            ("pass_rate", "guards passed", 2), ("fps", "fps", 1), ("speed_vs_ffmpeg", "speed / ffmpeg", 2),
            ("peak_mb", "peak MB", 0), ("failed", "guards failed", None)]


def _fmt(value: object, digits: int | None) -> str:
    if digits is None:
        return str(value)
    return f"{value:.{digits}f}" if isinstance(value, float | int) and math.isfinite(value) else "–"


def markdown_summary(summary: Sequence[dict[str, object]]) -> str:
    """The summary as a markdown table."""
    return _markdown(summary, _COLUMNS)


def unbeaten_baselines(summary: Sequence[dict[str, object]]) -> list[str]:
    """Adversarial baselines whose mean combined score is not below our best method's (should be none)."""
    ours = [float(s["combined"]) for s in summary if s["kind"] == "ours"]
    if not ours:
        return []
    best = max(ours)
    return [str(s["method"]) for s in summary if s["kind"] == "baseline" and not float(s["combined"]) < best]


_INTERP_COLUMNS = [("method", "method", None), ("kind", "kind", None), ("cases", "cases", None),
                   ("psnr", "PSNR of restored frames ↑", 2), ("ssim", "SSIM ↑", 3),
                   ("temporal_flickering", "VBench flicker ↑", 4), ("fps", "frames/s", 1)]


def interpolation_summary(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Frame-drop rows averaged per method."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        out.append({"method": method, "kind": mine[0]["kind"], "cases": len(mine),
                    **{k: statistics.fmean(float(r[k]) for r in mine)
                       for k in ("psnr", "ssim", "temporal_flickering", "fps")}})
    return out


def _markdown(records: Sequence[dict[str, object]], columns: list[tuple[str, str, int | None]]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" if d is None else "---:" for _, _, d in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(r[k], d) for k, _, d in columns) + " |" for r in records]
    return "\n".join(lines)


def _plot(summary: Sequence[dict[str, object]], path: Path) -> Path | None:
    """Stability gain against fidelity (SSIM to the reference), one point per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; no plot")
        return None
    colours = {"ours": "C2", "competitor": "C0", "baseline": "C3", "none": "k"}
    fig, ax = plt.subplots(figsize=(7, 5))
    for s in summary:
        ax.scatter(s["stability_gain"], s["ssim"], color=colours.get(str(s["kind"]), "C7"),
                   marker="o" if s["pass_rate"] == 1.0 else "x", s=40)
        ax.annotate(str(s["method"]), (s["stability_gain"], s["ssim"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("stability gain (share of the input's warping error removed) →")
    ax.set_ylabel("SSIM to the reference →")
    ax.set_title("green: ours · blue: ffmpeg · red: adversarial baselines · x: a guard failed", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _html(summary: Sequence[dict[str, object]], rows: Sequence[dict[str, object]], meta: dict[str, object],
          plot: Path | None, gifs: Sequence[Path], interp: Sequence[dict[str, object]]) -> str:
    def table(records: Sequence[dict[str, object]], columns: list[tuple[str, str, int | None]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k, ''), d))}</td>" for k, _, d in columns)
                       + "</tr>" for r in records)
        return f"<table><tr>{head}</tr>{body}</table>"

    def embed(path: Path, mime: str) -> str:
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()

    case_cols = [("case", "case", None), ("method", "method", None), ("warping_error_ref", "warp err ↓", 5),
                 ("stability_gain", "gain ↑", 3), ("temporal_flickering", "flicker ↑", 4), ("psnr", "PSNR", 2),
                 ("ssim", "SSIM", 3), ("alignment", "align", 2), ("motion_kept", "motion", 2),
                 ("freeze_rate", "freeze", 2), ("sharpness_kept", "sharp", 2), ("failed", "failed", None),
                 ("fps", "fps", 1)]
    parts = ["<!doctype html><meta charset='utf-8'><title>coherence benchmark</title>",
             "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{max-width:100%}</style>",
             "<h1>coherence benchmark</h1>",
             f"<p>{html.escape(json.dumps(meta))}</p>", "<h2>Summary (means over cases)</h2>",
             table(summary, _COLUMNS)]
    if interp:
        parts += ["<h2>Frame-drop interpolation (means over cases)</h2>", table(interp, _INTERP_COLUMNS)]
    if plot is not None:
        parts.append(f"<h2>Stability gain against fidelity</h2><img src='{embed(plot, 'image/png')}'>")
    for gif in gifs:
        parts.append(f"<h3>{html.escape(gif.stem)}: input | {SHOWCASE}</h3><img src='{embed(gif, 'image/gif')}'>")
    parts += ["<h2>Every case</h2>", table(rows, case_cols)]
    return "\n".join(parts)


def _write_rows(path: Path, rows: Sequence[dict[str, object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _round(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)


def _machine() -> str:
    """CPU model (Linux ``/proc/cpuinfo``, else the architecture) and the number of CPUs."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs"


def _clean(records: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: _round(v) if isinstance(v, float) else v for k, v in r.items()} for r in records]


def write_outputs(out: Path, rows: Sequence[dict[str, object]], interp_rows: Sequence[dict[str, object]], *,
                  quick: bool, seconds: float) -> tuple[list[dict[str, object]], str]:
    """Write ``results.json``, ``summary.md``, the plot and ``report.html`` for the rows so far."""
    summary = summarise(rows)
    interp = interpolation_summary(interp_rows)
    table = markdown_summary(summary)
    if interp:
        table += "\n\nFrame-drop interpolation (odd frames dropped and restored; scores on the restored frames)\n\n"
        table += _markdown(interp, _INTERP_COLUMNS)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": quick,
            "machine": _machine(),
            "seconds": round(seconds, 1), "cases": len({r["case"] for r in rows})}
    (out / "results.json").write_text(json.dumps({"meta": meta, "summary": _clean(summary), "rows": _clean(rows),
                                                  "interpolation": _clean(interp_rows)}, indent=1))
    (out / "summary.md").write_text(f"Benchmark {meta['date']} on {meta['machine']}, quick={quick}, "
                                     f"{meta['cases']} cases, {meta['seconds']} s\n\n{table}\n")
    plot = _plot(summary, out / "gain_vs_fidelity.png")
    gifs = sorted((out / "clips").glob("*.gif"))[:6]
    (out / "report.html").write_text(_html(summary, rows, meta, plot, gifs, interp))
    return summary, table


def run_suite(out: str | Path, *, quick: bool = False, all_generated: bool = False,
              on_case: Callable[[str, int], None] | None = None) -> tuple[list[dict[str, object]], str]:
    """Run the whole suite and write its outputs into ``out`` (rewritten after every case, so an interrupted
    run leaves the results of the cases it finished).

    Args:
        out: output folder (created).
        quick: small clips and one preset of ours (finishes in a few minutes on a laptop).
        all_generated: every clip of the generated-clips folder instead of one per generator.
        on_case: called with each case's name and its index before it runs (progress).

    Returns:
        ``(summary rows, markdown summary table)``.
    """
    out = Path(out)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    (out / "clips").mkdir(exist_ok=True)
    methods = all_methods(quick=quick)
    started = time.time()
    rows: list[dict[str, object]] = []
    interp_rows: list[dict[str, object]] = []
    result: tuple[list[dict[str, object]], str] = ([], "")
    for index, case in enumerate(all_cases(quick=quick, all_generated=all_generated)):
        if on_case is not None:
            on_case(case.name, index)
        case_rows = run_case(case, methods, clips_dir=out / "clips")
        if case.has_truth and not (quick and interp_rows):
            interp_rows.extend(frame_drop_rows(case.name, case.reference, case.fps))
        _write_rows(out / "cases" / f"{case.name}.csv", case_rows)
        (out / "cases" / f"{case.name}.json").write_text(json.dumps(_clean(case_rows), indent=1))
        rows.extend(case_rows)
        result = write_outputs(out, rows, interp_rows, quick=quick, seconds=time.time() - started)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--all-generated", action="store_true", help="every generated clip, not one per generator")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary, table = run_suite(args.out, quick=args.quick, all_generated=args.all_generated,
                               on_case=lambda name, i: log.info("case %d: %s", i + 1, name))
    print(table)
    return 1 if unbeaten_baselines(summary) else 0


if __name__ == "__main__":
    raise SystemExit(main())
