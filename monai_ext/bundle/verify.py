"""What the Project-MONAI model-zoo CI checks on a bundle, offline (``tools/verify_bundles.py``).

Conventions (also in docs/DESIGN.md section 6):

* **Export declaration.** A bundle that ships or promises an exported network lists the
  formats in ``configs/inference.json`` under the id ``export_formats`` (``["torchscript"]``,
  ``["onnx"]`` or both); the verifier then exports ``network_def`` with the example inputs
  (TorchScript by tracing with ``strict=False``, so a dict output is kept, every output
  tensor checked against eager; ONNX via ``torch.onnx``, skipped when the exporter packages
  are not installed). Tracing passes a ``TextFeatures`` text as the dict ``{"tokens", "mask",
  "pooled"}`` (a traced NamedTuple loses its field names), so networks taking one ``text``
  argument must also accept that mapping.
* **Network output.** In ``eval()`` mode the forward returns the logits tensor
  ``(B, pred.num_channels, *spatial)``, or a dict holding it at ``"pred"`` (other declared
  outputs, e.g. ``object_logits``, are checked at their keys), or a tuple/list holding it at
  index 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from monai_ext.bundle.config import CONFIG_FILES, build_network, config_files, load_metadata, load_parser
from monai_ext.bundle.examples import _dtype, _fake_shape, make_network_inputs, network_output

__all__ = [
    "MAX_MODEL_BYTES",
    "PER_CONFIG_IDS",
    "REQUIRED_FILES",
    "SCHEMA_FILE",
    "SCHEMA_URL_NAME",
    "CheckResult",
    "config_disagreements",
    "format_report",
    "verify_bundle",
]

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schemas" / "meta_schema_20240725.json"
SCHEMA_URL_NAME = "meta_schema_20240725.json"
REQUIRED_FILES = (
    "configs/metadata.json",
    "configs/inference.json",
    "configs/evaluate.json",
    "configs/train.json",
    "configs/multi_gpu_train.json",
    "configs/logging.conf",
    "docs/README.md",
    "LICENSE",
    "models/model.pt",
)
MAX_MODEL_BYTES = 50 * 1024 * 1024
#: top-level ids that legitimately differ between a bundle's inference and training configs
PER_CONFIG_IDS = frozenset(
    {"imports", "bundle_root", "device", "output_dir", "network", "network_def", "prepare_batch", "initialize", "run", "finalize"}
)
#: inference.json id -> the train.json id that must contain its value (one prompt style among those trained)
_TRAINED_AMONG = {"prompt_style": "prompt_styles"}


def config_disagreements(bundle: str | os.PathLike) -> list[str]:
    """Where a bundle's training and inference configs disagree on a setting they share (empty: none).

    * every other top-level id defined in both ``inference.json`` and ``train.json`` (e.g.
      ``image_size``, ``text_encoder``, ``use_tcvp``) has the same raw value in both (ids that are
      per-config by nature, :data:`PER_CONFIG_IDS`, are skipped);
    * the network train.json exports (its ``export_network`` applied to ``network_def``, or the
      network itself) has the state-dict keys and shapes of inference.json's ``network_def``, so
      trained weights load into the inference network;
    * inference.json's ``prompt_style`` is among train.json's ``prompt_styles``.

    ``evaluate.json`` is read over inference.json (an overlay), so it cannot disagree with it.
    """
    bundle = Path(bundle)
    infer = load_parser(bundle, "inference.json", device="cpu")
    train = load_parser(bundle, "train.json", device="cpu")
    problems = []
    infer_ids, train_ids = set(infer.get()), set(train.get())
    for key in sorted((infer_ids & train_ids) - PER_CONFIG_IDS):
        if infer[key] != train[key]:
            problems.append(f"{key}: inference.json has {infer[key]!r}, train.json {train[key]!r}")
    for key, trained in _TRAINED_AMONG.items():
        if key in infer_ids and trained in train_ids:
            styles = train.get_parsed_content(trained)
            if infer.get_parsed_content(key) not in ([styles] if isinstance(styles, str) else list(styles)):
                problems.append(f"{key}: inference.json uses {infer[key]!r}, train.json trains {trained} {train[trained]!r}")
    if "pretrained" in train_ids:
        train["pretrained"] = False  # the layout is what matters here, not the pretrained values
    trained_net = train.get_parsed_content("network_def")
    if "export_network" in train_ids:
        trained_net = train.get_parsed_content("export_network")(trained_net)
    want = {k: tuple(v.shape) for k, v in infer.get_parsed_content("network_def").state_dict().items()}
    got = {k: tuple(v.shape) for k, v in trained_net.state_dict().items()}
    if want != got:
        differ = sorted(set(want) ^ set(got)) or sorted(k for k in want if want[k] != got[k])
        problems.append(f"network_def: the network train.json exports does not fit inference.json's, e.g. {differ[:5]}")
    return problems


@dataclass
class CheckResult:
    """One check of :func:`verify_bundle`: ``status`` is ``PASS``, ``FAIL`` or ``SKIP``."""

    name: str
    status: str
    message: str = ""
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True unless the check failed (a skipped check does not fail the bundle)."""
        return self.status != "FAIL"

    def __str__(self) -> str:
        return f"{self.status:<4}  {self.name}" + (f": {self.message}" if self.message else "")


def _short_error(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".strip()
    msg = " ".join(msg.split())
    return msg if len(msg) <= 500 else msg[:500] + " ..."


class _Checks:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    def add(self, name: str, status: str, message: str = "") -> CheckResult:
        r = CheckResult(name, status, message)
        self.results.append(r)
        return r

    def run(self, name: str, fn: Callable[[], str | None]) -> bool:
        """Run ``fn``; PASS with its returned message, FAIL with the exception; SKIP on _Skip."""
        try:
            msg = fn()
        except _Skip as e:
            self.add(name, "SKIP", str(e))
            return True
        except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
            self.add(name, "FAIL", _short_error(e))
            if os.environ.get("MONAI_EXT_VERIFY_TRACEBACK"):
                traceback.print_exc()
            return False
        self.add(name, "PASS", msg or "")
        return True


class _Skip(Exception):
    pass


@contextlib.contextmanager
def _quiet_monai():
    """Silence MONAI's INFO logs and warnings (e.g. the schema hash notice) inside a check."""
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith("monai")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _check_refs(parser: Any) -> str:
    """Every ``@id`` reference of the config names an existing id."""
    from monai.bundle import ReferenceResolver

    parser.parse(reset=True)
    config = parser.get()
    refs = ReferenceResolver.find_refs_in_config(config, id="")
    missing = sorted(r for r in refs if r not in parser)
    if missing:
        raise KeyError(f"references to undefined ids: {missing}")
    return f"{len(parser.get())} top-level ids, {len(refs)} references resolved"


def _check_net_in_out(bundle: Path, metadata: Mapping, device: str) -> str:
    parser = load_parser(bundle, "inference.json", device=device)
    net = build_network(parser).to(device)
    inputs = make_network_inputs(metadata, batch=1, device=device, parser=parser)
    with torch.no_grad():
        result = net(*inputs)
    out = network_output(result)
    declared_outputs = metadata["network_data_format"]["outputs"]
    spec = declared_outputs["pred"]
    want_c = int(spec["num_channels"])
    if out.shape[0] != 1 or out.shape[1] != want_c:
        raise ValueError(f"output shape {tuple(out.shape)}: expected batch 1 and {want_c} channels")
    declared = spec.get("spatial_shape")
    if declared:
        want = _fake_shape(declared)
        if len(want) != out.ndim - 2 or any(
            str(d) != "*" and w != o for d, w, o in zip(declared, want, out.shape[2:])
        ):
            raise ValueError(f"output spatial shape {tuple(out.shape[2:])} does not match declared {declared}")
    want_dt = _dtype(spec.get("dtype"))
    if out.dtype != want_dt:
        raise ValueError(f"output dtype {out.dtype} does not match declared {want_dt}")
    others = [k for k, v in declared_outputs.items() if k != "pred" and isinstance(v, Mapping)]
    if others and isinstance(result, Mapping):
        for key in others:
            if key not in result:
                raise KeyError(f"metadata declares output {key!r}, the network returns {sorted(result)}")
            value, channels = result[key], int(declared_outputs[key]["num_channels"])
            if value.shape[0] != 1 or value.ndim < 2 or value.shape[1] != channels:
                raise ValueError(f"output {key!r} shape {tuple(value.shape)}: expected batch 1 and {channels} channels")
    args = " + ".join(_describe(x) for x in inputs)
    outs = ", ".join(f"{k} {tuple(v.shape)}" for k, v in _output_tensors(result).items())
    return f"{args} -> {outs} {out.dtype}"


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    return type(x).__name__


def _export_inputs(bundle: Path, metadata: Mapping, device: str) -> tuple[torch.nn.Module, tuple]:
    parser = load_parser(bundle, "inference.json", device=device)
    net = build_network(parser, ckpt_file=bundle / "models" / "model.pt").to(device)
    # tracing turns a NamedTuple into a plain tuple: pass a dict instead
    inputs = tuple(dict(x._asdict()) if hasattr(x, "_asdict") else x for x in make_network_inputs(metadata, 1, device, parser))
    return net, inputs


def _output_tensors(out: Any) -> dict[str, torch.Tensor]:
    """The tensors of a forward result by name: a dict's items, a sequence's items by index, or the tensor."""
    if isinstance(out, torch.Tensor):
        return {"output": out}
    items = out.items() if isinstance(out, Mapping) else enumerate(out)
    return {str(k): v for k, v in items if isinstance(v, torch.Tensor)}


def _check_torchscript(bundle: Path, metadata: Mapping, device: str) -> str:
    from monai.networks.utils import convert_to_torchscript

    net, inputs = _export_inputs(bundle, metadata, device)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.ts")
        with _quiet_monai():  # tracer warnings about shape checks in forward are expected
            # strict=False keeps a dict output; the outputs are compared below (MONAI's verify would compare a dict's keys)
            convert_to_torchscript(net, filename_or_obj=path, verify=False, inputs=list(inputs), use_trace=True, strict=False)
        size = os.path.getsize(path)
        traced = torch.jit.load(path, map_location=device).eval()
    with torch.no_grad():
        eager_out, traced_out = _output_tensors(net(*inputs)), _output_tensors(traced(*inputs))
    if set(eager_out) != set(traced_out) or not eager_out:
        raise ValueError(f"traced outputs {sorted(traced_out)} differ from eager outputs {sorted(eager_out)}")
    for name, value in eager_out.items():
        torch.testing.assert_close(traced_out[name], value, rtol=1e-3, atol=1e-4, msg=lambda m, n=name: f"output {n}: {m}")
    return f"traced with {len(inputs)} inputs, outputs {sorted(eager_out)} match eager, {size / 1e6:.2f} MB"


def _check_onnx(bundle: Path, metadata: Mapping, device: str) -> str:
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise _Skip("onnx is not installed here; export not checked") from e
    net, inputs = _export_inputs(bundle, metadata, device)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        with _quiet_monai():
            torch.onnx.export(net, inputs, path)
        size = os.path.getsize(path)
    return f"exported, {size / 1e6:.2f} MB"


def verify_bundle(
    bundle: str | os.PathLike,
    schema_file: str | os.PathLike | None = None,
    device: str = "cpu",
) -> list[CheckResult]:
    """Run the model-zoo checks on one bundle folder and return one :class:`CheckResult` each.

    Checks: required files; ``models/model.pt`` <= 50 MB; metadata against the schema
    (``monai.bundle.verify_metadata`` with our local schema copy, no download) and naming
    ``meta_schema_20240725.json``; ``version`` listed in ``changelog``; each config parses
    with ``ConfigParser`` (an overlay merged over its base: ``evaluate.json`` over ``inference.json``,
    ``multi_gpu_train.json`` over ``train.json``), its ``@``
    references exist and its ``network_def`` instantiates; inference.json and train.json agree on
    the settings they share (:func:`config_disagreements`); the checkpoint loads into
    ``network_def`` (strict); the network forward on ``(image, text)`` made from
    ``network_data_format`` gives the declared ``pred`` channels / shape / dtype; the
    exports listed in ``inference.json``'s ``export_formats``.
    Never raises for a bundle problem: failures are FAIL results.
    """
    from monai.bundle import verify_metadata

    bundle = Path(bundle)
    schema_file = Path(schema_file) if schema_file is not None else SCHEMA_FILE
    c = _Checks()
    if not bundle.is_dir():
        c.add("bundle folder", "FAIL", f"{bundle} is not a folder")
        return c.results

    for rel in REQUIRED_FILES:
        p = bundle / rel
        c.add(f"file {rel}", "PASS" if p.is_file() else "FAIL", "" if p.is_file() else "missing")

    model = bundle / "models" / "model.pt"
    if model.is_file():
        size = model.stat().st_size
        c.add(
            "model.pt size <= 50 MB",
            "PASS" if size <= MAX_MODEL_BYTES else "FAIL",
            f"{size / 2**20:.2f} MB",
        )

    metadata: dict | None = None
    meta_file = bundle / "configs" / "metadata.json"

    def _load_meta() -> str:
        nonlocal metadata
        metadata = load_metadata(bundle)
        if not isinstance(metadata, dict):
            raise ValueError("metadata.json is not a JSON object")
        return ""

    if meta_file.is_file() and c.run("metadata parses as JSON", _load_meta):

        def _schema() -> str:
            if not schema_file.is_file():  # verify_metadata would try to download it
                raise FileNotFoundError(f"schema file {schema_file} not found")
            with _quiet_monai():
                verify_metadata(meta_file=str(meta_file), filepath=str(schema_file))
            return f"valid against {schema_file.name}"

        def _schema_url() -> str:
            url = str(metadata.get("schema", ""))
            if not url.endswith(SCHEMA_URL_NAME):
                raise ValueError(f"schema {url!r} does not name {SCHEMA_URL_NAME}")
            return ""

        def _changelog() -> str:
            version, log = metadata.get("version"), metadata.get("changelog")
            if not isinstance(log, dict) or version not in log:
                raise ValueError(f"version {version!r} not in changelog {sorted(log) if isinstance(log, dict) else log!r}")
            return f"version {version}"

        c.run("metadata schema", _schema)
        c.run("metadata schema url", _schema_url)
        c.run("metadata version in changelog", _changelog)

    configs_ok = True
    for name in CONFIG_FILES:
        path = bundle / "configs" / name
        if not path.is_file():
            continue
        files = [f for f in config_files(name) if (bundle / "configs" / f).is_file()]
        label = " + ".join(files)
        holder: dict = {}

        def _parse(files=files) -> str:
            holder["parser"] = load_parser(bundle, files, device=device)
            return _check_refs(holder["parser"])

        ok = c.run(f"config {label} parses", _parse)
        configs_ok &= ok
        if ok and "network_def" in holder["parser"]:

            def _net(parser=holder["parser"]) -> str:
                net = parser.get_parsed_content("network_def")
                if not isinstance(net, torch.nn.Module):
                    raise TypeError(f"network_def is {type(net)}, not a torch.nn.Module")
                n = sum(p.numel() for p in net.parameters())
                return f"{type(net).__name__}, {n:,} parameters"

            configs_ok &= c.run(f"config {label} network_def instantiates", _net)

    if configs_ok and (bundle / "configs/train.json").is_file() and (bundle / "configs/inference.json").is_file():

        def _agree() -> str:
            problems = config_disagreements(bundle)
            if problems:
                raise ValueError("; ".join(problems))
            return "inference.json and train.json agree"

        c.run("configs agree on shared settings", _agree)

    inference_ok = (bundle / "configs/inference.json").is_file() and metadata is not None
    if inference_ok:
        if model.is_file():

            def _ckpt() -> str:
                parser = load_parser(bundle, "inference.json", device="cpu")
                build_network(parser, ckpt_file=model)
                return "loads into network_def (strict)"

            c.run("checkpoint loads", _ckpt)
        c.run("network input/output", lambda: _check_net_in_out(bundle, metadata, device))

        formats: list = []

        def _formats() -> str:
            with open(bundle / "configs/inference.json") as f:
                formats.extend(json.load(f).get("export_formats", []) or [])
            unknown = [x for x in formats if x not in ("torchscript", "onnx")]
            if unknown:
                raise ValueError(f"unknown export_formats {unknown}; allowed: torchscript, onnx")
            return ", ".join(formats) if formats else "none declared"

        if c.run("export formats declared", _formats):
            if "torchscript" in formats:
                c.run("export torchscript", lambda: _check_torchscript(bundle, metadata, device))
            if "onnx" in formats:
                c.run("export onnx", lambda: _check_onnx(bundle, metadata, device))
    return c.results


def format_report(bundle: str | os.PathLike, results: Sequence[CheckResult]) -> str:
    """A per-check PASS/FAIL report of one bundle."""
    n_fail = sum(not r.passed for r in results)
    head = f"{bundle}: {'OK' if n_fail == 0 else f'{n_fail} FAILED'} ({len(results)} checks)"
    return "\n".join([head] + [f"  {r}" for r in results])
