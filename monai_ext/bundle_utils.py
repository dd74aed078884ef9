"""Shared helpers for checking and benchmarking the bundles in ``bundles/``.

Used by ``tools/verify_bundles.py`` (what the Project-MONAI model-zoo CI checks, offline)
and ``tools/benchmark.py``; importable by the tests (:func:`verify_bundle`).

Conventions defined here (also in docs/DESIGN.md section 6):

* **Text input in metadata.** ``network_data_format.inputs`` holds ``image`` (MONAI's
  usual tensor argument, ``(B, num_channels, *spatial_shape)``) and ``text``, a tensor
  argument whose ``format`` says what the network's ``text`` argument is::

      "text": {"type": "text", "format": "text-features", "num_channels": 384,
               "spatial_shape": ["*"], "dtype": "float32", "value_range": [],
               "is_patch_data": false, "channel_def": {}}

  ``num_channels`` is the feature size ``D``, ``spatial_shape`` the token count ``[L]``
  (``"*"`` = any; checks use :data:`DEFAULT_TEXT_LENGTH`). Formats known here:
  ``"text-features"`` -> ``monai_ext.prompts.TextFeatures(tokens (B, L, D) float,
  mask (B, L) bool (True = real token), pooled (B, D) float)``, the ``TextEncoder`` output
  (a NamedTuple); ``"token-features"`` -> the tensor ``(B, L, D)`` alone;
  ``"pooled-features"`` -> a tensor ``(B, D)``. Another layout can be
  added with :func:`register_text_format`. A config may instead define the id
  ``text_example``: a callable ``(batch_size) -> text`` used in place of the format.
* **Export declaration.** A bundle that ships or promises an exported network lists the
  formats in ``configs/inference.json`` under the id ``export_formats`` (``["torchscript"]``,
  ``["onnx"]`` or both); the verifier then exports ``network_def`` with an ``(image, text)``
  example (TorchScript by tracing, checked against eager outputs; ONNX via ``torch.onnx``,
  skipped when the exporter packages are not installed). Tracing passes a ``TextFeatures``
  text as the dict ``{"tokens", "mask", "pooled"}`` (a traced NamedTuple loses its field
  names), so networks must also accept that mapping.
* **Network output.** In ``eval()`` mode the forward returns the logits tensor
  ``(B, pred.num_channels, *spatial)``; a dict is read at ``"pred"`` and a tuple/list at
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

__all__ = [
    "REPO_ROOT",
    "SCHEMA_FILE",
    "SCHEMA_URL_NAME",
    "REQUIRED_FILES",
    "CONFIG_FILES",
    "MAX_MODEL_BYTES",
    "DEFAULT_TEXT_LENGTH",
    "DEFAULT_ANY_SIZE",
    "CheckResult",
    "register_text_format",
    "resolve_bundle",
    "load_metadata",
    "load_parser",
    "parse_config_overrides",
    "apply_config_overrides",
    "build_network",
    "load_checkpoint",
    "image_spec",
    "make_image_input",
    "make_text_input",
    "network_output",
    "verify_bundle",
    "format_report",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "meta_schema_20240725.json"
SCHEMA_URL_NAME = "meta_schema_20240725.json"
CONFIG_FILES = ("inference.json", "evaluate.json", "train.json", "multi_gpu_train.json")
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
DEFAULT_TEXT_LENGTH = 16
DEFAULT_ANY_SIZE = 64


# --------------------------------------------------------------------------- inputs


def _text_features(batch: int, length: int, dim: int, dtype: torch.dtype, device: Any) -> Any:
    """``monai_ext.prompts.TextFeatures(tokens (B, L, D), mask (B, L) bool, pooled (B, D))``, random."""
    from monai_ext.prompts.encoder import TextFeatures

    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(batch, length, dim, generator=g, dtype=torch.float32).to(device=device, dtype=dtype)
    return TextFeatures(tokens, torch.ones(batch, length, dtype=torch.bool, device=device), tokens.mean(1))


_TEXT_FORMATS: dict[str, Callable[[int, int, int, torch.dtype, Any], Any]] = {
    "text-features": _text_features,
    "token-features": lambda b, n, d, dt, dev: _text_features(b, n, d, dt, dev).tokens,
    "pooled-features": lambda b, n, d, dt, dev: _text_features(b, n, d, dt, dev).pooled,
}


def register_text_format(name: str, builder: Callable[[int, int, int, torch.dtype, Any], Any]) -> None:
    """Register ``builder(batch, length, dim, dtype, device) -> text`` for a metadata text ``format``."""
    _TEXT_FORMATS[name] = builder


def _dtype(name: str | None) -> torch.dtype:
    from monai.utils import get_equivalent_dtype

    return get_equivalent_dtype(name or "float32", torch.Tensor)


def _fake_shape(shape: Sequence[str | int], any_size: int = DEFAULT_ANY_SIZE) -> tuple[int, ...]:
    from monai.bundle.scripts import _get_fake_spatial_shape

    return tuple(int(s) for s in _get_fake_spatial_shape(shape, p=1, n=1, any=any_size))


def image_spec(metadata: Mapping) -> tuple[int, tuple[int, ...], torch.dtype]:
    """``(num_channels, spatial_shape, dtype)`` of the ``image`` input declared in metadata."""
    spec = metadata["network_data_format"]["inputs"]["image"]
    return int(spec["num_channels"]), _fake_shape(spec["spatial_shape"]), _dtype(spec.get("dtype"))


def make_image_input(metadata: Mapping, batch: int = 1, device: Any = "cpu") -> torch.Tensor:
    """Random image batch ``(batch, C, *spatial)`` as declared in ``metadata``."""
    c, shape, dt = image_spec(metadata)
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, c, *shape, generator=g).to(device=device, dtype=dt)


def make_text_input(metadata: Mapping, batch: int = 1, device: Any = "cpu", parser: Any = None) -> Any:
    """A random text input for ``batch`` items following the metadata ``text`` argument.

    See the module docstring for the formats. Returns ``None`` when metadata declares no
    ``text`` input. ``parser`` (a ConfigParser): its ``text_example`` id, when defined,
    wins.
    """
    if parser is not None and "text_example" in parser:
        return parser.get_parsed_content("text_example")(batch)
    spec = metadata.get("network_data_format", {}).get("inputs", {}).get("text")
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ValueError(f"metadata text input must be a tensor object, got {spec!r}")
    fmt = spec.get("format", "text-features")
    if fmt not in _TEXT_FORMATS:
        raise ValueError(f"unknown text format {fmt!r}; known: {sorted(_TEXT_FORMATS)}")
    shape = spec.get("spatial_shape") or ["*"]
    length = _fake_shape(shape[:1], any_size=DEFAULT_TEXT_LENGTH)[0]
    return _TEXT_FORMATS[fmt](batch, length, int(spec["num_channels"]), _dtype(spec.get("dtype")), device)


def network_output(out: Any) -> torch.Tensor:
    """The prediction tensor of a forward result (a dict's ``"pred"``, a sequence's first item)."""
    if isinstance(out, Mapping):
        out = out["pred"]
    elif isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"network output is not a tensor: {type(out)}")
    return out


# --------------------------------------------------------------------------- bundles


def resolve_bundle(name_or_path: str | os.PathLike, bundles_dir: str | os.PathLike | None = None) -> Path:
    """A bundle folder from a path or a name under ``bundles/``."""
    p = Path(name_or_path)
    if p.is_dir():
        return p.resolve()
    root = Path(bundles_dir) if bundles_dir is not None else REPO_ROOT / "bundles"
    if (root / str(name_or_path)).is_dir():
        return (root / str(name_or_path)).resolve()
    raise FileNotFoundError(f"no bundle {name_or_path!r} (not a folder, nor under {root})")


def load_metadata(bundle: Path) -> dict:
    with open(Path(bundle) / "configs" / "metadata.json") as f:
        return json.load(f)


def load_parser(bundle: Path, config: str | Sequence[str] = "inference.json", device: Any = None) -> Any:
    """A ConfigParser of ``configs/<config>`` (a list is merged in order) with the metadata as ``_meta_``.

    ``bundle_root`` is set to the bundle folder (and ``device`` when given), as
    ``monai.bundle run --bundle_root`` does.
    """
    from monai.bundle import ConfigParser

    bundle = Path(bundle)
    files = [str(bundle / "configs" / c) for c in ([config] if isinstance(config, str) else config)]
    parser = ConfigParser()
    parser.read_config(f=files if len(files) > 1 else files[0])
    meta = bundle / "configs" / "metadata.json"
    if meta.is_file():
        parser.read_meta(f=str(meta))
    parser["bundle_root"] = str(bundle)
    if device is not None:
        parser["device"] = torch.device(device)
    return parser


def parse_config_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``ID=VALUE`` items (a tool's ``--override``) to a dict; values are read as Python literals,
    anything else is kept as a string.

    Raises:
        ValueError: an item without ``=`` or without an id.
    """
    import ast

    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--override takes ID=VALUE, got {item!r}")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


def apply_config_overrides(parser: Any, overrides: Mapping[str, Any], where: str) -> None:
    """Set config ids as the bundle command line would, before anything is built.

    Raises:
        SystemExit: an id the config (named ``where`` in the message) does not have.
    """
    for key, value in overrides.items():
        if key not in parser:
            raise SystemExit(f"--override {key}: {where} has no id {key!r}")
        parser[key] = value


def load_checkpoint(net: torch.nn.Module, ckpt_file: str | os.PathLike, strict: bool = True) -> None:
    """Load ``ckpt_file`` into ``net``: a plain state dict or one nested under model/network/state_dict."""
    ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=True)
    if isinstance(ckpt, Mapping):
        for key in ("model", "network", "state_dict", "net"):
            if key in ckpt and isinstance(ckpt[key], Mapping):
                ckpt = ckpt[key]
                break
    net.load_state_dict(ckpt, strict=strict)


def build_network(parser: Any, net_id: str = "network_def", ckpt_file: str | os.PathLike | None = None) -> torch.nn.Module:
    """Instantiate ``net_id`` from ``parser``, load ``ckpt_file`` when it exists, return it in eval mode."""
    net = parser.get_parsed_content(net_id)
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"config id {net_id!r} is not a torch.nn.Module: {type(net)}")
    if ckpt_file is not None and Path(ckpt_file).is_file():
        load_checkpoint(net, ckpt_file)
    return net.eval()


# --------------------------------------------------------------------------- verification


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
    image = make_image_input(metadata, batch=1, device=device)
    text = make_text_input(metadata, batch=1, device=device, parser=parser)
    with torch.no_grad():
        out = network_output(net(image, text))
    spec = metadata["network_data_format"]["outputs"]["pred"]
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
    t = "no text" if text is None else f"text {metadata['network_data_format']['inputs']['text'].get('format')}"
    return f"image {tuple(image.shape)} + {t} -> pred {tuple(out.shape)} {out.dtype}"


def _export_inputs(bundle: Path, metadata: Mapping, device: str) -> tuple[torch.nn.Module, tuple]:
    parser = load_parser(bundle, "inference.json", device=device)
    net = build_network(parser, ckpt_file=bundle / "models" / "model.pt").to(device)
    image = make_image_input(metadata, batch=1, device=device)
    text = make_text_input(metadata, batch=1, device=device, parser=parser)
    if hasattr(text, "_asdict"):  # tracing turns a NamedTuple into a plain tuple: pass a dict instead
        text = dict(text._asdict())
    return net, (image, text)


def _check_torchscript(bundle: Path, metadata: Mapping, device: str) -> str:
    from monai.networks.utils import convert_to_torchscript

    net, inputs = _export_inputs(bundle, metadata, device)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.ts")
        with _quiet_monai():  # tracer warnings about shape checks in forward are expected
            convert_to_torchscript(
                net, filename_or_obj=path, verify=True, inputs=list(inputs), device=torch.device(device),
                use_trace=True, rtol=1e-3, atol=1e-4, strict=False,
            )
        size = os.path.getsize(path)
    return f"traced with (image, text), outputs match eager, {size / 1e6:.2f} MB"


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
    with ``ConfigParser`` (``multi_gpu_train.json`` merged over ``train.json``), its ``@``
    references exist and its ``network_def`` instantiates; the checkpoint loads into
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
        files = ["train.json", name] if name == "multi_gpu_train.json" and (bundle / "configs/train.json").is_file() else [name]
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
