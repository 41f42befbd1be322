"""The ``coherence`` command: a thin layer over the public Python API.

Only this module prints, draws progress bars and chooses exit codes. Every subcommand has an
``_add_<name>_parser`` function that declares its options and a ``_cmd_<name>`` function that calls the
library and returns an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from coherence.errors import CoherenceError

if TYPE_CHECKING:
    from coherence.pipeline import Pipeline

EXIT_CODES = """exit codes:
  0   success
  1   error
  2   bad input (missing, empty, corrupt, unsupported) or bad command line
  3   the output cannot be written
  4   invalid option
  5   a dependency or weights file is missing
  70  internal error (run again with --debug and report it)
  130 interrupted
  141 the reader of the output stopped early (e.g. a pipe into head)"""

log = logging.getLogger("coherence")
T = TypeVar("T")


# -- shared helpers -------------------------------------------------------------------------------------------
def progress(iterable: Iterable[T], *, total: int | None, desc: str, args: argparse.Namespace,
             unit: str = "frame") -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar on stderr unless ``--quiet`` (or stderr is not a terminal)."""
    if args.quiet:
        yield from iterable
        return
    from tqdm import tqdm

    with tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
              disable=None) as bar:
        yield from bar


class ProgressCounter:
    """A progress bar driven by callbacks (``on_frame(count)``), for library calls that run a whole job."""

    def __init__(self, *, total: int | None, desc: str, args: argparse.Namespace) -> None:
        self._bar = None
        if not args.quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="frame", leave=False, dynamic_ncols=True, disable=None)

    def __call__(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count - self._bar.n)

    def __enter__(self) -> ProgressCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def _add_io_options(p: argparse.ArgumentParser) -> None:
    """Options every command that writes video shares."""
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="output file (.mp4 .mov .mkv .webm .gif .avi) or folder of PNGs (a path without extension)")
    p.add_argument("--fps", help="frame rate of an image-folder input (default 24), e.g. 8 or 30000/1001")
    p.add_argument("--quality", type=int, help="encoder quality (CRF for mp4/mkv/webm; lower is better)")
    p.add_argument("--lossless", action="store_true", help="lossless FFV1 (with an .mkv output)")


def _add_motion_options(p: argparse.ArgumentParser, *, rate_help: str) -> None:
    """Flow backend, device and target rate, shared by the commands that smooth or interpolate."""
    p.add_argument("--flow", default="dis", help="optical flow backend: dis (default), farneback, raft-small, "
                                                 "raft-large")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--to-fps", help=f"{rate_help}, e.g. 24, 30 or 30000/1001")
    rate.add_argument("--factor", type=int, help="multiply the frame rate by this whole number (2, 4...)")


def _run_pipeline(args: argparse.Namespace, pipeline: Pipeline, desc: str) -> int:
    """Stream ``args.input`` through ``stages`` into ``args.output`` with a progress bar."""
    import cv2
    import torch

    # the stages run their own threads (the flow on one, the filtering on another), and the decoder and the encoder
    # run in their own processes: the many small ops gain nothing from intra-op threads (torch's or OpenCV's) and
    # lose a lot when they oversubscribe the cores that those threads and processes need
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from coherence.allocator import reuse_freed_memory
    from coherence.io import probe

    reuse_freed_memory()

    info = probe(args.input, fps=args.fps)
    total = pipeline.expected_frames(info.frames, info.fps)
    with ProgressCounter(total=total, desc=desc, args=args) as counter:
        result = pipeline.run(info, args.output, quality=args.quality, lossless=args.lossless, on_frame=counter)
    _say(args, f"{result.output}: {result.frames_out} frames at {result.fps_out} fps "
               f"(from {result.frames_in} at {result.fps_in}) in {result.seconds:.1f} s "
               f"({result.frames_in / max(result.seconds, 1e-9):.1f} input frames/s)")
    return 0


# -- info -----------------------------------------------------------------------------------------------------
def _add_info_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a video file or image folder")
    p.add_argument("input", type=Path, help="video file or folder of images")
    p.add_argument("--fps", help="frame rate of an image folder (default 24)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args: argparse.Namespace) -> int:
    from coherence.io import probe

    info = probe(args.input, fps=args.fps)
    facts = {"path": str(info.path), "width": info.width, "height": info.height, "frames": info.frames,
             "fps": str(info.fps), "duration": round(info.duration, 4), "audio": info.has_audio,
             "variable_rate": info.variable_rate, "codec": info.codec, "alpha": info.has_alpha}
    if args.json:
        print(json.dumps(facts))
    else:
        for key, value in facts.items():
            print(f"{key:>14}: {value}")
    return 0


# -- convert --------------------------------------------------------------------------------------------------
def _add_convert_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="re-encode a clip to another format (frames, rate and audio kept)")
    p.add_argument("input", type=Path, help="video file or folder of images")
    _add_io_options(p)
    p.add_argument("--max-size", type=int, help="downscale so that the longer side is at most this many pixels")
    p.set_defaults(func=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    from coherence.pipeline import Pipeline
    from coherence.resize import Resize

    return _run_pipeline(args, Pipeline([Resize(max_side=args.max_size)] if args.max_size else []), "convert")


# -- smooth ---------------------------------------------------------------------------------------------------
def _add_smooth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "smooth", help="remove flicker, boiling and jitter with flow-guided temporal filtering",
        description="Deflicker exposure, colour and regional illumination against flow-aligned neighbours, then "
                    "filter each pixel along its flow trajectory where the flow can follow it. The output has the "
                    "input's frames, size and rate; nothing is blended across a scene cut. Audio is copied.")
    p.add_argument("input", type=Path, help="video file or folder of images")
    _add_io_options(p)
    p.add_argument("--preset", default="default", help="light, default or strong (default: default)")
    p.add_argument("--strength", type=float, default=1.0, help="0..1, how much is corrected (default 1)")
    p.add_argument("--radius", type=int,
                   help="exposure window in frames on each side (default: the preset's, in seconds)")
    p.add_argument("--dejitter", type=float, default=0.0, metavar="PX",
                   help="also move each frame onto its trajectories' smoothed positions, by at most PX pixels, "
                        "for camera-like shake (default 0: off)")
    p.add_argument("--flow-weights", type=Path, help="local weights file for a RAFT backend")
    _add_motion_options(p, rate_help="then interpolate to this rate in the same pass")
    p.set_defaults(func=_cmd_smooth)


def _cmd_smooth(args: argparse.Namespace) -> int:
    from coherence.pipeline import Pipeline

    pipeline = Pipeline.from_options(smooth=True, smooth_preset=args.preset, strength=args.strength,
                                     radius=args.radius, factor=args.factor, to_fps=args.to_fps, flow=args.flow,
                                     flow_weights=args.flow_weights, dejitter=args.dejitter, device=args.device)
    return _run_pipeline(args, pipeline, "smooth")


# -- interpolate ----------------------------------------------------------------------------------------------
def _add_interpolate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpolate", help="raise the frame rate with flow-based interpolation (scene-cut and duplicate aware)",
        description="Synthesise in-between frames from bidirectional optical flow. Output frame k is at time "
                    "k/out_fps exactly. A factor N on T input frames gives N(T-1)+1 frames, frame N*k being input "
                    "frame k; the output ends on the last input frame (it is not held). Nothing is morphed across "
                    "a scene cut: the earlier frame is held until the cut. Runs of up to 4 duplicated frames "
                    "(GIF exports) are re-timed as one image, so motion stays smooth. Audio is copied.")
    p.add_argument("input", type=Path, help="video file or folder of images")
    _add_io_options(p)
    p.add_argument("--preset", help="generator preset: its target rate (unless --factor/--to-fps) and smoothing "
                                    "strength (modelscope, zeroscope, animatediff, cogvideox, wan)")
    _add_motion_options(p, rate_help="output frame rate")
    p.set_defaults(func=_cmd_interpolate)


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from coherence.errors import ConfigError
    from coherence.pipeline import Pipeline

    if args.factor is None and args.to_fps is None and args.preset is None:
        raise ConfigError("give --factor, --to-fps or --preset")
    pipeline = Pipeline.from_options(factor=args.factor, to_fps=args.to_fps, generator=args.preset, flow=args.flow,
                                     device=args.device)
    return _run_pipeline(args, pipeline, "interpolate")


# -- demo -----------------------------------------------------------------------------------------------------
def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="make a synthetic clip with text-to-video artefacts and show what coherence does")
    p.add_argument("-o", "--output", type=Path, default=Path("coherence-demo"), help="folder for the results")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic scene")
    p.add_argument("--frames", type=int, default=48, help="number of frames (at least 2)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from coherence.clip import Clip
    from coherence.errors import OutputError
    from coherence.io import write_clip
    from coherence.metrics import score
    from coherence.pipeline import Pipeline
    from coherence.report import markdown_table, write_side_by_side
    from coherence.smooth import Smoother
    from generators.synthetic import synthetic_clip

    out: Path = args.output
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    sample = synthetic_clip(frames=args.frames, size=(480, 272), seed=args.seed, artifacts="t2v")
    write_clip(sample.clean, out / "clean.mp4")
    write_clip(sample.degraded, out / "input.mp4")
    stream = Pipeline([Smoother()]).process(iter(sample.degraded.frames), sample.degraded.fps)
    frames = list(progress(stream, total=len(sample.degraded), desc="smooth", args=args))
    smoothed = Clip(torch.stack(frames), sample.degraded.fps)
    write_clip(smoothed, out / "smoothed.mp4")
    write_side_by_side(sample.degraded.frames, smoothed.frames, out / "comparison.mp4", fps=sample.clean.fps,
                       labels=("input", "coherence smooth"))
    metrics = ["warping_error", "temporal_flickering", "psnr", "ssim", "alignment", "freeze_rate", "sharpness_kept"]
    pairs = (("input", sample.degraded), ("smoothed", smoothed))
    reports = [score(clip.frames, sample.clean.frames, fps=clip.fps, metrics=metrics, path=name)
               for name, clip in progress(pairs, total=2, desc="score", args=args, unit="clip")]
    table = markdown_table(reports)
    (out / "scores.md").write_text(f"Scores against the clean ground truth (clean.mp4)\n\n{table}\n")
    (out / "scores.json").write_text(json.dumps([r.to_dict() for r in reports], indent=2))
    _say(args, f"{table}\n\nwrote {out}/: clean.mp4 (ground truth), input.mp4 (with text-to-video artefacts), "
               "smoothed.mp4, comparison.mp4 (side by side), scores.md and scores.json")
    return 0


# -- score ----------------------------------------------------------------------------------------------------
def _add_score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="measure frame coherence (warping error, VBench scores, fidelity guards)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="PATH", help="video files or image folders to score")
    p.add_argument("--reference", type=Path, metavar="REF",
                   help="the original (or ground truth): enables psnr, ssim, alignment, motion_kept, freeze_rate, "
                        "sharpness_kept and warping_error_ref")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object per input")
    fmt.add_argument("--csv", action="store_true", help="print CSV, one row per input")
    p.add_argument("--plot", type=Path, metavar="FILE", help="draw per-frame curves of the inputs (and reference)")
    p.add_argument("--fps", help="frame rate of image-folder inputs (default 24)")
    p.add_argument("--metrics", help="comma-separated metric names (default: all that need no weights)")
    p.add_argument("--flow", default="dis", help="flow backend (default dis)")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    from coherence.io import read_clip
    from coherence.metrics import ScoreContext, default_metrics, get_metric, score
    from coherence.report import markdown_table, plot_per_frame, to_csv, to_json

    names = [n.strip() for n in args.metrics.split(",") if n.strip()] if args.metrics else None
    reference = read_clip(args.reference, fps=args.fps) if args.reference else None
    # the reference's flows are estimated once and shared by every input judged against it
    ref_ctx = ScoreContext(reference.frames, fps=reference.fps, flow=args.flow) if reference else None
    reports = []
    for path in progress(args.inputs, total=len(args.inputs), desc="score", args=args, unit="clip"):
        clip = read_clip(path, fps=args.fps)
        ctx = ScoreContext(clip.frames, reference.frames if reference else None, fps=clip.fps, flow=args.flow,
                           reference_context=ref_ctx)
        report = score(clip.frames, metrics=names, path=str(path), context=ctx)
        reports.append(report)
        if args.json:
            print(to_json(report), flush=True)
    if ref_ctx is not None and not (args.json or args.csv):
        wanted = names or default_metrics(with_reference=False)
        own = [n for n in wanted if not get_metric(n).needs_reference]
        if own:
            reports.insert(0, score(ref_ctx.frames, metrics=own, path=f"{args.reference} (reference)",
                                    context=ref_ctx))
    if args.csv:
        print(to_csv(reports), end="")
    elif not args.json:
        print(markdown_table(reports))
    if args.plot:
        plot_per_frame(reports, args.plot)
        _say(args, f"wrote {args.plot}")
    return 0


# -- batch ----------------------------------------------------------------------------------------------------
def _add_batch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="score or process many clips on a local process pool or a Ray cluster (resumable)",
        description="Run a pipeline per clip of a folder (searched recursively) or a manifest (a text file of "
                    "paths, or CSV/TSV with a 'path' or 'file' column). With no stage flag each clip is scored. "
                    "Results go to OUT_DIR/results.jsonl, one line per clip; a rerun skips the clips already done. "
                    "Exit code 0 when the batch ran, even if some clips failed; 1 when every clip failed.")
    p.add_argument("source", type=Path, metavar="IN_DIR_OR_MANIFEST", help="folder of clips or manifest file")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT_DIR",
                   help="folder for results.jsonl and the processed clips (mirroring the input layout)")
    p.add_argument("--smooth", action="store_true", help="smooth each clip (default preset)")
    p.add_argument("--interpolate", action="store_true", help="interpolate each clip (2x unless --factor/--to-fps)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--factor", type=int, help="interpolation factor (implies --interpolate)")
    rate.add_argument("--to-fps", help="interpolate to this frame rate, e.g. 60 (implies --interpolate)")
    p.add_argument("--score", action="store_true", help="score each result (always on without a stage flag)")
    p.add_argument("--workers", type=int, help="parallel workers (default: one per CPU core)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: a cluster address (e.g. auto, ray://head:10001), or a local Ray without one")
    p.add_argument("--force", action="store_true", help="redo clips that results.jsonl says are done")
    p.add_argument("--fps", help="frame rate of image-folder clips (default 24)")
    p.add_argument("--format", dest="output_format", metavar="SUFFIX",
                   help="format of processed clips, e.g. .mp4 (default: the input's when writable, else .mp4)")
    p.add_argument("--device", default="cpu", help="torch device of stages and metrics (cpu, cuda)")
    p.set_defaults(func=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from coherence.batch import BatchOptions, run_batch

    interpolate = args.interpolate or args.factor is not None or args.to_fps is not None
    suffix = args.output_format
    options = BatchOptions(
        smooth=args.smooth, score=args.score, fps=args.fps, device=args.device,
        interpolate_factor=args.factor if args.factor is not None else 2 if interpolate and not args.to_fps else None,
        interpolate_fps=args.to_fps, output_format=None if suffix is None else "." + suffix.lstrip("."))
    bar: Any = None
    failed = 0

    def on_progress(done: int, total: int, record: dict[str, Any] | None) -> None:
        nonlocal bar, failed
        if record is not None and record["status"] != "ok":
            failed += 1
            if not args.quiet:
                error = str(record["error"])
                line = error if error.startswith(record["path"]) else f"{record['path']}: {error}"
                (bar.write if bar is not None else print)(f"coherence: failed: {line}", file=sys.stderr)
        if args.quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="batch", unit="clip", leave=False, dynamic_ncols=True, disable=None)
        bar.update(done - bar.n)
        if failed:
            bar.set_postfix(failed=failed)

    try:
        summary = run_batch(args.source, args.output, options=options, executor="local" if args.ray is None else "ray",
                            workers=args.workers, ray_address=args.ray or None, force=args.force,
                            on_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    _say(args, f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped (see {summary.ledger})")
    return 1 if summary.ran and not summary.ok else 0


# -- generate -------------------------------------------------------------------------------------------------
def _parse_size(text: str) -> tuple[int, int]:
    from coherence.errors import ConfigError

    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 8 or int(height) < 8:
        raise ConfigError(f"invalid size {text!r}: use WIDTHxHEIGHT, e.g. 512x320")
    return int(width), int(height)


def _add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a clip from a prompt (synthetic model, or a diffusers model)")
    p.add_argument("prompt", help="text prompt")
    p.add_argument("-o", "--output", required=True, type=Path, help="output file or folder of PNGs")
    p.add_argument("--model", default="synthetic", help="generator name (default synthetic: no weights)")
    p.add_argument("--frames", type=int, help="number of frames (default: the model's)")
    p.add_argument("--size", help="WIDTHxHEIGHT (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--steps", type=int, help="denoising steps (diffusion models)")
    p.add_argument("--latent-blend", type=float, metavar="STRENGTH",
                   help="flow-guided latent blending during generation, strength in [0, 1]")
    p.add_argument("--ground-truth", type=Path, metavar="PATH",
                   help="also write the clean clip, where the generator knows it (synthetic)")
    p.add_argument("--smooth", action="store_true", help="smooth the generated clip (default preset)")
    p.add_argument("--to-fps", help="interpolate the generated clip to this frame rate, e.g. 24")
    p.add_argument("--device", default="auto", help="torch device of a diffusers model (auto, cpu, cuda)")
    p.add_argument("--offload", choices=("none", "model", "sequential"), default="none",
                   help="CPU offload of a diffusers model, to fit a smaller GPU")
    p.add_argument("--model-id", help="Hugging Face model id or local folder (with --model diffusers, or to "
                                      "replace a preset's weights)")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from coherence.io import write_clip
    from coherence.latent import LatentBlender
    from coherence.pipeline import Pipeline
    from generators import get_generator

    if args.latent_blend is not None:
        LatentBlender(strength=args.latent_blend)  # validates the strength before any weights load
    # the synthetic model runs in its latent mode, where its incoherence is per-frame latent noise and the latent
    # blender has latents to work on
    built = {"latent": True} if args.model == "synthetic" else {
        "device": args.device, "offload": args.offload, **({"model_id": args.model_id} if args.model_id else {})}
    generator = get_generator(args.model, **built)
    call: dict[str, Any] = {"seed": args.seed}
    for key, value in (("frames", args.frames), ("size", _parse_size(args.size) if args.size else None),
                       ("steps", args.steps), ("latent_blend", args.latent_blend)):
        if value is not None:
            call[key] = value
    result = generator.generate(args.prompt, **call)
    clip = result.clip
    pipeline = Pipeline.from_options(smooth=args.smooth, to_fps=args.to_fps, device=args.device)
    if pipeline.stages:
        clip = pipeline.process_clip(clip)
    write_clip(clip, args.output)
    _say(args, f"wrote {args.output} ({clip.frames.shape[0]} frames at {clip.fps} fps)")
    if args.ground_truth is not None:
        if result.ground_truth is None:
            from coherence.errors import ConfigError

            raise ConfigError(f"the {args.model} generator has no ground truth to write")
        write_clip(result.ground_truth.clean, args.ground_truth)
        _say(args, f"wrote {args.ground_truth} (ground truth)")
    return 0


# -- bench ----------------------------------------------------------------------------------------------------
def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run the benchmark suite: our smoother, ffmpeg filters and adversarial "
                                     "baselines on synthetic, degraded real and generated clips")
    p.add_argument("--out", type=Path, default=Path("bench-results"),
                   help="folder for results.json, per-case CSV/JSON, summary.md, plots and report.html")
    p.add_argument("--quick", action="store_true", help="small clips and one preset (a few minutes)")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.runner import run_suite, unbeaten_baselines

    def on_case(name: str, index: int) -> None:
        _say(args, f"case {index + 1}: {name}")

    summary, table = run_suite(args.out, quick=args.quick, on_case=on_case)
    print(table)
    _say(args, f"wrote {args.out / 'report.html'}")
    unbeaten = unbeaten_baselines(summary)
    if unbeaten:  # the suite's own acceptance test: a baseline that games the scores must not win
        print(f"coherence: error: adversarial baselines not beaten by our smoother: {', '.join(unbeaten)}",
              file=sys.stderr)
        return 1
    return 0


# -- entry point ----------------------------------------------------------------------------------------------
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_info_parser,
    _add_convert_parser,
    _add_smooth_parser,
    _add_interpolate_parser,
    _add_demo_parser,
    _add_score_parser,
    _add_bench_parser,
    _add_batch_parser,
    _add_generate_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="coherence", description="Make AI-generated video hold together, and measure how well it does.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see ``coherence --help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
                        format="coherence: %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except CoherenceError as exc:
        if args.debug:
            raise
        print(f"coherence: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("coherence: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (``coherence score --csv | head``): stop quietly, and keep Python's exit
        # from writing the rest of the buffer to the closed pipe (a stdout without a file descriptor has none)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into one line
        if args.debug:
            raise
        print(f"coherence: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
