"""``monai-ext``: segment a study or a video from the command line with a text prompt.

    monai-ext segment INPUT --prompt TEXT [--bundle NAME] [--output DIR] [--device auto|cpu|cuda] ...
    monai-ext segment --datalist FILE | --studies DIR [--prompt TEXT] --output DIR   # a batch; torchrun shards it
    monai-ext bundles                  # the installed bundles, their version and measured validation Dice
    monai-ext prompts [QUERY]          # the targets the prompt library knows, per modality
    monai-ext label --studies DIR [--port N]   # a MONAI Label server with the bundles (the label extra)

``segment`` drives the bundle's own ``configs/inference.json`` (what ``python -m monai.bundle run``
runs), with the command-line options as config overrides. Errors are one line on stderr naming the
input and the problem, with a non-zero exit status (2: the input, the prompt or the options; 1:
anything else); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_BUNDLE", "MAX_PROMPT_CHARACTERS", "main", "root_cause"]

DEFAULT_BUNDLE = "reclmis_language_guided_segmentation"
#: longer prompts are refused (the text encoder reads 64 tokens; a pasted report belongs in --report)
MAX_PROMPT_CHARACTERS = 1000
PROG = "monai-ext"


class UsageError(ValueError):
    """A problem with the options, found before any work."""


def root_cause(error: BaseException) -> BaseException:
    """The error that started it, under MONAI's and ignite's wrappers ("applying transform ...")."""
    while isinstance(error, RuntimeError) and error.__cause__ is not None:
        error = error.__cause__
    return error


def _bundles_dir(value: str | None) -> Path:
    from monai_ext.bundle import REPO_ROOT

    return Path(value or os.environ.get("MONAI_EXT_BUNDLES", REPO_ROOT / "bundles"))


def _bundle_folders(bundles_dir: Path) -> list[Path]:
    return sorted(p for p in bundles_dir.glob("*") if (p / "configs" / "metadata.json").is_file())


def _device(name: str) -> Any:
    from monai_ext.bundle.segment import resolve_device

    try:
        return resolve_device(name)
    except ValueError as e:
        raise UsageError(f"--{e}") from None


def _bundle(args: argparse.Namespace) -> Path:
    """The folder of ``--bundle`` (a name under the bundles folder, or a path)."""
    from monai_ext.bundle import resolve_bundle

    try:
        return resolve_bundle(args.bundle, _bundles_dir(args.bundles_dir))
    except FileNotFoundError as e:
        raise UsageError(f"--bundle {args.bundle}: {e}; see `{PROG} bundles`") from None


def _check_paths(input_path: str, output: Path) -> None:
    """Refuse before any work: a missing input, an output that is the input, an output that cannot be written."""
    source = Path(input_path)
    if not source.exists():
        raise UsageError(f"{input_path}: file or folder not found")
    resolved_out, resolved_in = output.resolve(), source.resolve()
    if resolved_out == resolved_in or (source.is_dir() and resolved_in in resolved_out.parents):
        raise UsageError(f"--output {output}: the output folder must not be the input or inside it")
    existing = next((p for p in [output, *output.parents] if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--output {output}: cannot write there ({existing} is not a writable folder)")


def _check_prompt(prompt: str) -> None:
    from monai_ext.bundle.segment import check_literal_text

    check_literal_text("--prompt", prompt)
    if not prompt or not prompt.strip():
        raise UsageError("--prompt is empty: name the target, e.g. --prompt 'the spleen'")
    if len(prompt) > MAX_PROMPT_CHARACTERS:
        raise UsageError(
            f"--prompt has {len(prompt)} characters (at most {MAX_PROMPT_CHARACTERS}): name one target; "
            "put a report in --report"
        )


@contextlib.contextmanager
def _quiet_libraries(debug: bool):
    """Keep MONAI's, ignite's and PyTorch's logs and warnings off the terminal unless ``--debug``."""
    if debug:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("ignite", "monai", "monai_ext", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _batch_source(args: argparse.Namespace) -> str | None:
    """The datalist or studies folder of a batch run (None: one input); exactly one of INPUT, --datalist, --studies."""
    given = [name for name, value in (("INPUT", args.input), ("--datalist", args.datalist), ("--studies", args.studies)) if value]
    if len(given) != 1:
        raise UsageError(
            "give one input: INPUT (a file or folder), --datalist FILE or --studies DIR"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    if args.studies and not Path(args.studies).is_dir():
        raise UsageError(f"--studies {args.studies}: not a folder")
    if args.datalist and not Path(args.datalist).is_file():
        raise UsageError(f"--datalist {args.datalist}: file not found")
    if args.split and not args.datalist:
        raise UsageError("--split is for --datalist")
    return args.datalist or args.studies


def _world_size() -> int:
    """Processes started by ``torchrun`` (its ``WORLD_SIZE``; 1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _segment(args: argparse.Namespace) -> int:
    from monai_ext.bundle import check_literal_text, load_parser, parse_config_overrides, segment

    from monai_ext.io import FORMATS, detect_source_kind, output_formats

    batch = _batch_source(args)
    if batch is None or args.prompt is not None:
        _check_prompt(args.prompt or "")
    output = Path(args.output)
    _check_paths(args.input or batch, output)
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown:
        raise UsageError(f"--format {' '.join(unknown)}: unknown; expected some of {', '.join(FORMATS)}")
    if batch is not None:
        return _segment_batch(args, batch, output)
    kind = detect_source_kind(args.input)
    output_formats(args.formats, kind)  # a format that does not fit the input fails here, before any work
    frame_range = _frame_range(args.frame_range)
    if (frame_range is not None or args.stride != 1) and kind != "video":
        raise UsageError(f"--frame-range and --stride are for videos; {args.input} is a {kind} input")
    if args.stride < 1:
        raise UsageError(f"--stride must be at least 1, got {args.stride}")
    bundle = _bundle(args)
    for name in ("report", "series"):
        check_literal_text(f"--{name}", getattr(args, name))
    if not args.debug:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its weight-loading bar is not the user's progress
    extra = parse_config_overrides(args.override or [])
    # the bundle's writer prints one line per input ("spleen: 7/30 frames; masks in DIR")
    with contextlib.redirect_stdout(io.StringIO() if args.quiet else sys.stdout):
        if kind != "video":
            segment(
                bundle, args.input, args.prompt, output, device=_device(args.device), formats=args.formats, overlay=args.overlay,
                report=args.report, modality=args.modality, series=args.series, progress=not args.quiet, overrides=extra,
            )
            return 0
        # a video is read lazily, chunk by chunk: memory does not grow with the video's length
        from monai_ext.bundle import BundlePipeline, segment_video

        overrides: dict[str, Any] = {"device": _device(args.device), "save_masks": False, "progress": not args.quiet, **extra}
        parser = load_parser(bundle, "inference.json", overrides=overrides)
        segment_video(
            BundlePipeline(parser), args.input, args.prompt, output, formats=args.formats, overlay=args.overlay,
            frame_range=frame_range, stride=args.stride, report=args.report, modality=args.modality,
            threshold=parser.get_parsed_content("threshold"), min_frames=parser.get_parsed_content("target_min_frames"),
        )
    return 0


def _segment_batch(args: argparse.Namespace, source: str, output: Path) -> int:
    """Every case of a datalist or studies folder through the bundle's ``run`` (``multi_gpu_inference.json``
    under ``torchrun``): cases already written are skipped, one ``summary.json`` at the end."""
    from monai_ext.bundle import check_literal_text, literal_path, load_parser, parse_config_overrides, read_cases

    if args.frame_range is not None or args.stride != 1:
        raise UsageError("--frame-range and --stride are for one video, not a batch")
    for name in ("report", "series"):
        check_literal_text(f"--{name}", getattr(args, name))
    cases = read_cases(source, args.split, prompt=args.prompt, report=args.report, modality=args.modality)
    bundle = _bundle(args)
    world = _world_size()
    config = ["inference.json", "multi_gpu_inference.json"] if world > 1 else "inference.json"
    overrides: dict[str, Any] = {
        "datalist": literal_path(source),
        "split": args.split,
        "batch_prompt": args.prompt,
        "report": args.report,
        "modality": args.modality,
        "output_dir": literal_path(output),
        "output_formats": list(args.formats),
        "overlay": args.overlay,
        "series": args.series,
        "skip_done": not args.redo,
        "progress": False,
    }
    if world == 1:
        overrides["device"] = _device(args.device)
    overrides.update(parse_config_overrides(args.override or []))
    parser = load_parser(bundle, config, overrides=overrides)
    if not args.debug:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    first = int(os.environ.get("RANK", "0")) == 0
    with contextlib.redirect_stdout(io.StringIO() if args.quiet else sys.stdout):
        parser.get_parsed_content("initialize")
        pending = parser.get_parsed_content("data")
        if first:
            print(f"{len(cases)} cases, {len(cases) - len(pending)} already written (skipped), {len(pending)} to segment"
                  + (f" on {world} processes" if world > 1 else ""))
        parser.get_parsed_content("run")
        if "finalize" in parser:
            parser.get_parsed_content("finalize")
        if first:
            print(f"summary: {output / 'summary.json'}")
    return 0


def _frame_range(text: str | None) -> tuple[int, int | None] | None:
    """``"START:STOP"`` (either may be empty) as frame indices, STOP exclusive."""
    if text is None:
        return None
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first, last = int(start or 0), (int(stop) if stop else None)
    except ValueError:
        raise UsageError(f"--frame-range {text}: expected START:STOP (frame indices, STOP exclusive), e.g. 100:400") from None
    if first < 0 or (last is not None and last <= first):
        raise UsageError(f"--frame-range {text}: START must be >= 0 and STOP after START")
    return first, last


def _bundles(args: argparse.Namespace) -> int:
    folders = _bundle_folders(_bundles_dir(args.bundles_dir))
    if not folders:
        raise UsageError(f"no bundle found in {_bundles_dir(args.bundles_dir)} (set --bundles_dir or MONAI_EXT_BUNDLES)")
    rows = []
    for folder in folders:
        meta = json.loads((folder / "configs" / "metadata.json").read_text())
        figures = meta.get("eval_metrics", {})
        per_dataset = ", ".join(f"{k} {v:.3f}" for k, v in figures.get("per_dataset_dice", {}).items())
        rows.append(
            {
                "bundle": folder.name,
                "version": meta.get("version"),
                "name": meta.get("name", folder.name),
                "validation_dice": figures.get("mean_dice"),
                "per_dataset": figures.get("per_dataset_dice", {}),
            }
        )
        if not args.json:
            dice = figures.get("mean_dice")
            print(f"{folder.name}  {meta.get('version')}  {meta.get('name', '')}")
            print(f"    validation Dice {dice:.3f} ({per_dataset})" if dice is not None else "    no measured figures")
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


def _prompts(args: argparse.Namespace) -> int:
    from monai_ext.prompts import MODALITIES, PromptLibrary, normalize_modality

    library = PromptLibrary()
    if args.query:
        entry = library.lookup(args.query)
        print(f"{args.query!r} -> {entry.name} ({entry.category or 'target'})")
        if entry.synonyms:
            print("  synonyms: " + ", ".join(entry.synonyms))
        print("  described for: " + ", ".join(entry.modalities))
        return 0
    modalities = [normalize_modality(args.modality)] if args.modality else list(MODALITIES)
    for modality in modalities:
        names = sorted(e.name for e in library.entries if modality in e.modalities)
        print(f"{modality} ({len(names)}): " + ", ".join(names))
    return 0


def _label(args: argparse.Namespace) -> int:
    from monai_ext.label import start_server

    if not args.studies.startswith(("http://", "https://")) and not Path(args.studies).is_dir():
        raise UsageError(f"--studies {args.studies}: not a folder")
    if args.device != "auto":
        _device(args.device)  # refuse cuda where there is none, before the server starts
    start_server(args.studies, host=args.host, port=args.port, bundles_dir=args.bundles_dir, device=args.device, app_dir=args.app_dir)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``monai-ext`` argument parser."""
    parser = argparse.ArgumentParser(prog=PROG, description="Text-prompted segmentation of medical image sequences (MONAI bundles).")
    parser.add_argument("--bundles_dir", help="folder of installed bundles (default: the project's bundles/, or $MONAI_EXT_BUNDLES)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment INPUT where --prompt says, write the masks in the input's own format")
    seg.add_argument("input", nargs="?", help="a 2D image, a frame folder, a video, a NIfTI/NRRD/MHA volume, a DICOM series or cine")
    seg.add_argument("--prompt", help="one target in words, e.g. 'the spleen', 'a polyp' (a batch: each case's own prompt or target when absent)")
    seg.add_argument("--datalist", help="a batch: a datalist JSON (tools/prepare_dataset.py's, or a list of {image, prompt}); "
                     "one output sub-folder per case, cases already written are skipped, summary.json at the end; "
                     "under torchrun the cases are shared across the processes")
    seg.add_argument("--studies", help="a batch: a folder of studies, each file or sub-folder one case (with --prompt)")
    seg.add_argument("--split", help="the datalist's split(s) to segment, e.g. validation (default: all)")
    seg.add_argument("--redo", action="store_true", help="a batch: segment every case again, even those already written")
    seg.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"bundle name or folder (default {DEFAULT_BUNDLE}; see `{PROG} bundles`)")
    seg.add_argument("--output", default="monai-ext-output", help="output folder (default ./monai-ext-output)")
    seg.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")
    seg.add_argument("--format", nargs="+", default=["auto"], dest="formats", metavar="FORMAT",
                     help="auto (the input's own: NIfTI for a volume, NIfTI + DICOM SEG for a DICOM series, a mask video for "
                     "a video, PNGs for frames), nifti, png, dicom-seg, video")
    seg.add_argument("--overlay", action="store_true", help="also write pictures: overlay PNGs / an overlay video, a mosaic of slices")
    seg.add_argument("--frame-range", dest="frame_range", metavar="START:STOP", help="a video's frames to segment (STOP exclusive)")
    seg.add_argument("--stride", type=int, default=1, help="a video: segment every N-th frame (the mask video keeps the duration)")
    seg.add_argument("--series", help="a study folder's series to segment: SeriesInstanceUID or SeriesNumber")
    seg.add_argument("--modality", choices=("ct", "mr", "ultrasound", "endoscopy"), help="the input's modality (default: detected)")
    seg.add_argument("--report", help="report text about the case, added to the prompt (e.g. BI-RADS fields)")
    seg.add_argument("--quiet", action="store_true", help="print nothing but errors")
    seg.add_argument("--override", nargs="*", metavar="ID=VALUE", help="other inference.json ids, e.g. threshold=0.5")
    seg.set_defaults(func=_segment)

    bun = sub.add_parser("bundles", help="the installed bundles, their version and validation Dice")
    bun.add_argument("--json", action="store_true", help="print JSON")
    bun.set_defaults(func=_bundles)

    lab = sub.add_parser("label", help="start a MONAI Label server: every bundle a model, params.prompt the target (needs the label extra)")
    lab.add_argument("--studies", required=True, help="the studies folder (MONAI Label's datastore) or a DICOMweb URL")
    lab.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: all)")
    lab.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    lab.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")
    lab.add_argument("--app-dir", dest="app_dir", help="a writable folder for the app's logs (default: a temporary one)")
    lab.set_defaults(func=_label)

    pro = sub.add_parser("prompts", help="the targets the prompt library knows, per modality, or what QUERY resolves to")
    pro.add_argument("query", nargs="?", help="free text to resolve, e.g. 'kidney_left'")
    pro.add_argument("--modality", help="list this modality only")
    pro.set_defaults(func=_prompts)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with _quiet_libraries(args.debug):
            return int(args.func(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure becomes one line, or a traceback with --debug
        if args.debug:
            raise
        cause = root_cause(error)
        plain_key_error = type(cause) is KeyError and cause.args  # str() of a bare KeyError quotes its message
        message = " ".join(str(cause.args[0] if plain_key_error else cause).split())
        named = isinstance(cause, UsageError) or str(getattr(args, "input", "")) in message
        where = "" if named or not getattr(args, "input", None) else f"{args.input}: "
        print(f"{PROG}: error: {where}{message}", file=sys.stderr)
        return 2 if isinstance(cause, (ValueError, KeyError, OSError, UsageError)) else 1


if __name__ == "__main__":
    sys.exit(main())
