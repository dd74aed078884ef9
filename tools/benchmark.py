#!/usr/bin/env python
"""Inference speed and memory of a bundle's network on sequences of frames.

    python tools/benchmark.py --bundle NAME --json OUT.json [--frames 16 64 256]
                              [--threads N] [--device cpu] [--warmup 2]

What is measured (docs/DESIGN.md section 6):

* the network is ``network_def`` of ``configs/inference.json`` (with ``models/model.pt``
  loaded when present), fed frames of the bundle's inference size: the ``image``
  ``num_channels`` / ``spatial_shape`` of ``network_data_format`` in the metadata
  (``"*"`` dims become 64);
* each sequence length runs in a fresh subprocess, so the peak resident memory
  (``resource.getrusage(...).ru_maxrss``) of one length is not inflated by another;
  ``peak_rss_load_mb`` is the peak after building the network, before any inference;
* text: the network's text arguments as ``network_data_format`` declares them - typed
  ``text_tokens`` ``(B, L, D)`` and ``text_mask`` ``(B, L)`` tensors, or one ``text`` argument
  (:func:`monai_ext.bundle.make_network_inputs`). When the config defines an id ``text_encoder``
  (a callable ``str -> TextFeatures``) it encodes the config's ``prompt`` (or ``"polyp"``) once per
  sequence, and that time is part of the sequence time; otherwise a fixed random text input of the
  declared shape (16 tokens for ``"*"``) is used and its encoding is not measured;
* frame-wise models run the frames in batches of the config id ``inference_batch_size``
  (default 8); per-frame latency = batch time / batch size, the median over the batches
  after ``--warmup`` warm-up batches. Streaming models - a config whose ``inferer`` is (or wraps)
  a :class:`~monai_ext.engines.StreamingSequenceInferer`, or that defines an id ``sequence_inferer``
  (a callable ``(frames, text_tokens, text_mask) -> logits``) - run the whole sequence in one call
  of it (warm-up: one call on 2 frames; test-time augmentation left out) with the text as token
  features and mask tensors, and the per-frame latency is the sequence time / T. Their frames come
  from a lazy source (:class:`LazyRandomFrames`, each frame made when read, as a video decoder
  would hand them over), so the peak RSS shows the memory the model keeps along the sequence
  rather than the size of the input;
* ``frames_per_s`` = T / (text encoding + all frames); ``gflops_per_frame`` = FLOPs of one
  ``network_def`` forward on one frame (``torch.utils.flop_counter.FlopCounterMode``, a
  multiply-add counts 2), text encoder excluded; for streaming models the FLOPs of the
  streaming inferer on 8 frames divided by 8 (past frames in memory); ``parameters`` of
  ``network_def``.

End to end (``--input PATH --prompt TEXT``): the bundle's ``configs/inference.json`` pipeline segments
one real input as ``monai.bundle run`` would, step by step with :class:`monai_ext.bundle.BundlePipeline`
- each transform of its ``preprocessing`` (read, modality, prompt text and its encoding, intensity,
frames), the ``inferer`` (the network on every frame), each transform of its ``postprocessing``
(probabilities back to the input's geometry, threshold, frame clean-up, masks written to a temporary
folder) - once to warm up and ``--repeat`` times timed, in a fresh subprocess. Reported: the median
seconds of each stage, named by its transform's class (``LoadSequenced``, ``ToSequenced``,
``inferer``, ``Invertd``, ``ApplyToFramesd``, ``SavePredictiond``, ...), the whole call, ms per input
frame and the peak RSS. This includes what the network-only figures leave out (resampling a
749x709 video back from 128x128, writing NIfTI / PNG / DICOM)::

    python tools/benchmark.py --bundle NAME --input ../shared/data/.../case.nii.gz --prompt liver --threads 2
        [--override refine_with_box_prompt=True ...]

``--override ID=VALUE`` sets ``inference.json`` ids before the pipeline is built, as the bundle command
line would (e.g. the optional LiteMedSAM refinement, whose seconds appear as the ``BoxPromptRefined``
stage, with ``CopyItemsd`` keeping the loaded input for it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from monai_ext.bundle import (  # noqa: E402
    BundlePipeline,
    apply_config_overrides,
    build_network,
    image_spec,
    load_metadata,
    load_parser,
    make_network_inputs,
    network_output,
    parse_config_overrides,
    resolve_bundle,
)

RESULT_TAG = "BENCHMARK_RESULT "
DEFAULT_BATCH = 8
DEFAULT_PROMPT = "polyp"
SEQUENCE_COST_FRAMES = 8


def expand_text(text: Any, batch: int) -> Any:
    """Repeat a batch-1 text input to ``batch`` items (tensors, mappings, sequences, dataclasses)."""
    if isinstance(text, torch.Tensor):
        return text.expand(batch, *text.shape[1:]) if text.ndim and text.shape[0] == 1 else text
    if isinstance(text, Mapping):
        return type(text)({k: expand_text(v, batch) for k, v in text.items()})
    if isinstance(text, tuple) and hasattr(text, "_fields"):
        return type(text)(*(expand_text(v, batch) for v in text))
    if isinstance(text, (tuple, list)):
        return type(text)(expand_text(v, batch) for v in text)
    if dataclasses.is_dataclass(text) and not isinstance(text, type):
        return dataclasses.replace(
            text, **{f.name: expand_text(getattr(text, f.name), batch) for f in dataclasses.fields(text) if f.init}
        )
    return text


class LazyRandomFrames:
    """``T`` random frames ``(C, H, W)``, each generated when read (same values on every read)."""

    def __init__(self, frames: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, seed: int = 0) -> None:
        self.frames, self.shape, self.dtype, self.device, self.seed = frames, shape, dtype, device, seed

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.frames:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return torch.rand(self.shape, generator=g).to(device=self.device, dtype=self.dtype)

    def __iter__(self):
        return (self[i] for i in range(self.frames))


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _get(parser: Any, key: str, default: Any) -> Any:
    return parser.get_parsed_content(key) if key in parser else default


def _token_tensors(text: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(text_tokens, text_mask)`` tensors of a network's text arguments: the typed pair as it is, or the
    fields of one ``TextFeatures`` / ``{"tokens", "mask"}`` argument (what a streaming inferer takes)."""
    if len(text) == 1:
        one = text[0]
        if isinstance(one, Mapping):
            return one["tokens"], one.get("mask")
        if hasattr(one, "tokens"):
            return one.tokens, getattr(one, "mask", None)
        return one, None
    return text[0], text[1]


def _text_arguments(parser: Any, metadata: Mapping, device: torch.device) -> tuple[tuple, float | None, str]:
    """The network's text arguments for one prompt, the seconds encoding it took and where they came from.

    With a ``text_encoder`` id the config's prompt is encoded (timed) and passed as the metadata
    declares the text: ``(tokens, mask)`` for typed ``text_tokens`` / ``text_mask`` inputs, else as
    one argument; without one, random inputs of the declared shape
    (:func:`monai_ext.bundle.make_network_inputs`).
    """
    if "text_encoder" not in parser:
        return make_network_inputs(metadata, batch=1, device=device, parser=parser)[1:], None, "random text features"
    encoder = parser.get_parsed_content("text_encoder")
    prompt = _get(parser, "prompt", None) or DEFAULT_PROMPT
    t0 = time.perf_counter()
    features = encoder(prompt)
    _sync(device)
    seconds = time.perf_counter() - t0
    inputs = metadata.get("network_data_format", {}).get("inputs", {})
    if "text_tokens" in inputs:
        tokens, mask = _token_tensors((features,))
        text = (tokens, mask) if "text_mask" in inputs else (tokens,)
    else:
        text = (features,)
    return tuple(_to_device(t, device) for t in text), seconds, "text_encoder"


def _to_device(value: Any, device: torch.device) -> Any:
    """``value`` (a tensor, a mapping or a NamedTuple of them) on ``device``: the config's text encoder
    may run elsewhere than the network."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return type(value)({k: _to_device(v, device) for k, v in value.items()})
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_to_device(v, device) for v in value))
    return value


def streaming_inferer(parser: Any, network: torch.nn.Module) -> Callable[..., torch.Tensor] | None:
    """``(frames, text_tokens, text_mask) -> logits`` over a whole sequence for a streaming bundle, None for a frame-wise one.

    The config's ``sequence_inferer`` id when it defines one; else its ``inferer`` when that is, or wraps
    (``AffineTTAInferer``; its moves are left out), a :class:`~monai_ext.engines.StreamingSequenceInferer`,
    run on ``network``.
    """
    from monai_ext.engines import StreamingSequenceInferer

    if "sequence_inferer" in parser:
        return parser.get_parsed_content("sequence_inferer")
    inferer = _get(parser, "inferer", None)
    while inferer is not None and not isinstance(inferer, StreamingSequenceInferer):
        inferer = getattr(inferer, "inferer", None)
    if inferer is None:
        return None
    return lambda frames, text_tokens, text_mask=None: inferer(frames, network, text_tokens, text_mask)


def run_worker(bundle: Path, frames: int, device_name: str, warmup: int, config: str, cost: bool = False) -> dict:
    """Benchmark one sequence length in this process (call in a fresh process).

    ``cost``: also count parameters and FLOPs (after the timed run and the RSS reading).
    """
    device = torch.device(device_name)
    metadata = load_metadata(bundle)
    parser = load_parser(bundle, config, device=device)
    net = build_network(parser, ckpt_file=bundle / "models" / "model.pt").to(device)
    c, shape, dtype = image_spec(metadata)
    batch_size = int(_get(parser, "inference_batch_size", DEFAULT_BATCH) or DEFAULT_BATCH)
    inferer = streaming_inferer(parser, net)
    if inferer is None:
        g = torch.Generator().manual_seed(0)
        seq = torch.rand(frames, c, *shape, generator=g).to(device=device, dtype=dtype)
    else:
        seq = LazyRandomFrames(frames, (c, *shape), dtype, device)
    rss_load = _peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    latencies: list[float] = []
    with torch.inference_mode():
        if inferer is not None:
            text, _, text_source = _text_arguments(parser, metadata, device)
            for _ in range(max(warmup, 1)):
                inferer(LazyRandomFrames(min(frames, 2), (c, *shape), dtype, device), *_token_tensors(text))
            _sync(device)
            t0 = time.perf_counter()
            text, text_time, text_source = _text_arguments(parser, metadata, device)
            inferer(seq, *_token_tensors(text))
            _sync(device)
            total = time.perf_counter() - t0
            latencies = [(total - (text_time or 0.0)) / frames]
            mode = "sequence_inferer"
        else:
            text1, _, text_source = _text_arguments(parser, metadata, device)
            n = min(batch_size, frames)
            for _ in range(warmup):
                network_output(net(seq[:n], *(expand_text(t, n) for t in text1)))
            _sync(device)
            t0 = time.perf_counter()
            text1, text_time, text_source = _text_arguments(parser, metadata, device)
            for start in range(0, frames, batch_size):
                batch = seq[start : start + batch_size]
                tb = time.perf_counter()
                network_output(net(batch, *(expand_text(t, batch.shape[0]) for t in text1)))
                _sync(device)
                latencies.append((time.perf_counter() - tb) / batch.shape[0])
            total = time.perf_counter() - t0
            mode = "frame-wise"
    result = {
        "frames": frames,
        "mode": mode,
        "batch_size": batch_size if inferer is None else None,
        "text_source": text_source,
        "text_encode_s": text_time,
        "sequence_s": total,
        "per_frame_latency_ms": 1000.0 * statistics.median(latencies),
        "frames_per_s": frames / total if total > 0 else None,
        "peak_rss_load_mb": rss_load,
        "peak_rss_mb": _peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    if cost:
        result["cost"] = network_cost(net, metadata, parser, device)
    return result


def network_cost(net: torch.nn.Module, metadata: Mapping, parser: Any, device: torch.device) -> dict:
    """Parameters and GFLOPs of one ``network_def`` forward on one frame."""
    from torch.utils.flop_counter import FlopCounterMode

    image, *text = make_network_inputs(metadata, batch=1, device=device, parser=parser)
    c, shape, dtype = image_spec(metadata)
    counter = FlopCounterMode(display=False)
    inferer = streaming_inferer(parser, net)
    if inferer is not None:
        # a streaming model's frame costs more once its memory holds past frames: count a
        # sequence long enough to fill the memory and average over its frames
        frames = SEQUENCE_COST_FRAMES
        with torch.inference_mode(), counter:
            inferer(LazyRandomFrames(frames, (c, *shape), dtype, device), *_token_tensors(text))
    else:
        frames = 1
        with torch.inference_mode(), counter:
            network_output(net(image, *text))
    return {
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "trainable_parameters": int(sum(p.numel() for p in net.parameters() if p.requires_grad)),
        "gflops_per_frame": counter.get_total_flops() / 1e9 / frames,
        "gflops_frames_counted": frames,
        "frame_shape": [c, *shape],
    }


def _stage_names(pipeline: BundlePipeline) -> list[str]:
    """One name per step of the pipeline: each transform's class, ``inferer`` between (repeats numbered)."""
    classes = [type(t).__name__ for t in pipeline.preprocessing.transforms]
    classes += ["inferer"] + [type(t).__name__ for t in pipeline.postprocessing.transforms]
    seen: Counter[str] = Counter()
    names = []
    for name in classes:
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names


def timed_pipeline(
    pipeline: BundlePipeline, item: Mapping[str, Any], device: torch.device
) -> tuple[dict[str, Any], list[float], float]:
    """Run ``pipeline`` on ``item`` one step at a time (as ``pipeline(item)`` does).

    Returns:
        ``(output, seconds of each step in the order of _stage_names, seconds of the whole call)``.
    """
    seconds = []
    start = time.perf_counter()
    data: Any = dict(item)
    steps = [
        *(lambda d, i=i: pipeline.preprocess(d, start=i, stop=i + 1) for i in range(len(pipeline.preprocessing.transforms))),
        pipeline.predict,
        *(lambda d, i=i: pipeline.postprocess(d, i, i + 1) for i in range(len(pipeline.postprocessing.transforms))),
    ]
    for step in steps:
        t0 = time.perf_counter()
        data = step(data)
        _sync(device)
        seconds.append(time.perf_counter() - t0)
    return data, seconds, time.perf_counter() - start


def run_pipeline_worker(bundle: Path, input: str, prompt: str, device_name: str, repeat: int, config: str,
                        overrides: Mapping[str, Any] | None = None) -> dict:
    """Time the bundle's pipeline (``config``'s preprocessing, inferer, post-processing) on one real input
    in this process (call in a fresh process)."""
    import tempfile

    device = torch.device(device_name)
    with tempfile.TemporaryDirectory() as out:
        parser = load_parser(bundle, config, device=device, overrides={"input": input, "prompt": prompt, "output_dir": out})
        apply_config_overrides(parser, overrides or {}, config)
        pipeline = BundlePipeline(parser)
        item = parser.get_parsed_content("data")[0]
        names = _stage_names(pipeline)
        rss_load = _peak_rss_mb()
        timed_pipeline(pipeline, item, device)  # warm-up, not reported
        data, seconds, totals = None, [], []
        for _ in range(repeat):
            output, stage_seconds, total = timed_pipeline(pipeline, item, device)
            data = data if data is not None else output
            seconds.append(stage_seconds)
            totals.append(total)
    frames = int(data["image"].shape[0])  # the frames the network segmented
    total = statistics.median(totals)
    return {
        "input": input,
        "prompt": prompt,
        "target": data["target"],
        "modality": data["modality"],
        "frames": frames,
        "repeat": repeat,
        "seconds": {name: statistics.median(s[i] for s in seconds) for i, name in enumerate(names)},
        "total_s": total,
        "ms_per_frame": 1000.0 * total / frames,
        "peak_rss_load_mb": rss_load,
        "peak_rss_mb": _peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
    }


def run_pipeline_benchmark(bundle: str | Path, input: str, prompt: str, threads: int | None = None,
                           device: str = "cpu", repeat: int = 1, config: str = "inference.json",
                           overrides: Sequence[str] = ()) -> dict:
    """End-to-end time of ``bundle``'s pipeline on ``input`` (a fresh subprocess); ``overrides``: ``ID=VALUE``
    config ids, e.g. ``refine_with_box_prompt=True``."""
    parse_config_overrides(overrides)  # fail on a malformed item before starting the worker
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if not Path(input).exists():
        raise FileNotFoundError(f"benchmark input not found: {input}")
    bundle = resolve_bundle(bundle)
    extra = ["--input", str(input), "--prompt", prompt, "--repeat", str(repeat)]
    if overrides:
        extra += ["--override", *overrides]
    args = argparse.Namespace(threads=threads, device=device, warmup=0, config=config)
    result = _spawn_worker(bundle, 0, args, extra=extra)
    return {"bundle": bundle.name, "config": config, "overrides": list(overrides), "device": device,
            "torch_version": torch.__version__,
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), **result}


def _spawn_worker(bundle: Path, frames: int, args: argparse.Namespace, cost: bool = False, extra: list[str] = ()) -> dict:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", "--bundle", str(bundle),
        "--frames", str(frames), "--device", args.device, "--warmup", str(args.warmup), "--config", args.config,
    ] + (["--cost"] if cost else []) + list(extra)
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    what = f"{frames} frames" if not extra else f"input {extra[1]}"
    raise RuntimeError(f"benchmark worker for {what} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def run_benchmark(bundle: str | Path, frames=(16, 64, 256), threads: int | None = None, device: str = "cpu",
                  warmup: int = 2, config: str = "inference.json") -> dict:
    """Benchmark ``bundle`` (a name under bundles/ or a folder); one fresh subprocess per length."""
    bundle = resolve_bundle(bundle)
    args = argparse.Namespace(threads=threads, device=device, warmup=warmup, config=config)
    report: dict[str, Any] = {
        "bundle": bundle.name,
        "bundle_path": str(bundle),
        "config": config,
        "device": device,
        "torch_version": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "requested_threads": threads,
    }
    frames = [int(t) for t in frames]
    if not frames:
        raise ValueError("no sequence length given")
    runs = [_spawn_worker(bundle, t, args, cost=(i == 0)) for i, t in enumerate(frames)]
    report.update(runs[0].pop("cost"))
    report["torch_threads"] = runs[0]["torch_threads"]
    report["runs"] = runs
    return report


def _table(report: dict) -> str:
    lines = [
        f"{report['bundle']}: {report['parameters']:,} parameters, {report['gflops_per_frame']:.3f} GFLOPs/frame "
        f"at {tuple(report['frame_shape'])}, device {report['device']}, {report['torch_threads']} threads",
        f"{'frames':>7} {'mode':>16} {'ms/frame':>9} {'frames/s':>9} {'seq s':>8} {'peak RSS MB':>12}",
    ]
    for r in report["runs"]:
        lines.append(
            f"{r['frames']:>7} {r['mode']:>16} {r['per_frame_latency_ms']:>9.2f} {r['frames_per_s']:>9.2f} "
            f"{r['sequence_s']:>8.3f} {r['peak_rss_mb']:>12.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="bundle name under bundles/ or a bundle folder")
    ap.add_argument("--json", dest="json_out", help="write the report as JSON here")
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256], help="sequence lengths")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up batches before timing")
    ap.add_argument("--config", default="inference.json", help="config file under configs/")
    ap.add_argument("--input", default=None, help="end to end: a real input file or folder for the bundle's pipeline")
    ap.add_argument("--prompt", default=None, help="end to end: the target to segment in --input")
    ap.add_argument("--repeat", type=int, default=1, help="end to end: timed runs after one warm-up run")
    ap.add_argument("--override", nargs="+", default=[], metavar="ID=VALUE",
                    help="end to end: config ids to set before the pipeline is built (values as Python literals)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cost", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.input is None) != (args.prompt is None):
        ap.error("--input and --prompt go together")
    if args.override and args.input is None:
        ap.error("--override applies to the end-to-end run (--input, --prompt)")
    try:
        overrides = parse_config_overrides(args.override)
    except ValueError as err:
        ap.error(str(err))
    if args.worker and args.input is not None:
        res = run_pipeline_worker(resolve_bundle(args.bundle), args.input, args.prompt, args.device, args.repeat, args.config,
                                  overrides)
        print(RESULT_TAG + json.dumps(res), flush=True)
        return 0
    if args.worker:
        res = run_worker(resolve_bundle(args.bundle), args.frames[0], args.device, args.warmup, args.config, args.cost)
        print(RESULT_TAG + json.dumps(res), flush=True)
        return 0

    if args.input is not None:
        report = run_pipeline_benchmark(args.bundle, args.input, args.prompt, args.threads, args.device, args.repeat, args.config,
                                        args.override)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in report["seconds"].items())
        print(f"{report['bundle']}: {report['input']} ({report['frames']} frames, '{report['target']}'): "
              f"{report['total_s']:.2f} s = {report['ms_per_frame']:.1f} ms/frame; stages (s): {stages}; "
              f"peak RSS {report['peak_rss_mb']:.0f} MB, {report['torch_threads']} threads")
    else:
        report = run_benchmark(args.bundle, args.frames, args.threads, args.device, args.warmup, args.config)
        print(_table(report))
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
