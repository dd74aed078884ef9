"""Example network inputs made from a bundle's metadata (``network_data_format``), for checks and benchmarks.

Conventions (also in docs/DESIGN.md section 6):

* **Text input in metadata.** ``network_data_format.inputs`` holds ``image`` (MONAI's
  usual tensor argument, ``(B, num_channels, *spatial_shape)``) and the text, in one of two
  layouts; the network is called with the inputs as positional arguments, image first.

  - typed, one tensor per argument: ``network(image, text_tokens, text_mask)``::

        "text_tokens": {"type": "text", "format": "token-features", "num_channels": 384,
                        "spatial_shape": ["*"], "dtype": "float32", "value_range": [],
                        "is_patch_data": false, "channel_def": {}},
        "text_mask": {"type": "mask", "format": "token-mask", "num_channels": 0,
                      "spatial_shape": ["*"], "dtype": "bool", "value_range": [0, 1],
                      "is_patch_data": false, "channel_def": {}}

    ``text_tokens`` is ``(B, L, D)``: ``num_channels`` is the feature size ``D`` and
    ``spatial_shape`` the token count ``[L]`` (``"*"`` = any; checks use
    :data:`DEFAULT_TEXT_LENGTH`). ``text_mask`` (optional) is ``(B, L)``, True for real
    tokens (no channel axis, hence ``num_channels`` 0); checks make it all True.
  - one ``text`` argument whose ``format`` says what it is: ``network(image, text)``::

        "text": {"type": "text", "format": "text-features", "num_channels": 384,
                 "spatial_shape": ["*"], "dtype": "float32", "value_range": [],
                 "is_patch_data": false, "channel_def": {}}

    Formats known here: ``"text-features"`` -> ``monai_ext.prompts.TextFeatures(tokens (B, L, D)
    float, mask (B, L) bool (True = real token), pooled (B, D) float)``, the ``TextEncoder``
    output (a NamedTuple); ``"token-features"`` -> the tensor ``(B, L, D)`` alone;
    ``"pooled-features"`` -> a tensor ``(B, D)``. Another layout can be added with
    :func:`register_text_format`.

  A config may instead define the id ``text_example``: a callable ``(batch_size) -> text``
  used in place of the metadata (a plain tuple is spread into several arguments).
  :func:`make_network_inputs` makes the arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "DEFAULT_ANY_SIZE",
    "DEFAULT_TEXT_LENGTH",
    "image_spec",
    "make_image_input",
    "make_network_inputs",
    "make_text_input",
    "network_output",
    "register_text_format",
]

DEFAULT_TEXT_LENGTH = 16
DEFAULT_ANY_SIZE = 64


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


def _text_from_spec(spec: Any, batch: int, device: Any, default_format: str) -> Any:
    """A random text argument for ``batch`` items following one metadata tensor spec."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"metadata text input must be a tensor object, got {spec!r}")
    fmt = spec.get("format", default_format)
    if fmt not in _TEXT_FORMATS:
        raise ValueError(f"unknown text format {fmt!r}; known: {sorted(_TEXT_FORMATS)}")
    shape = spec.get("spatial_shape") or ["*"]
    length = _fake_shape(shape[:1], any_size=DEFAULT_TEXT_LENGTH)[0]
    return _TEXT_FORMATS[fmt](batch, length, int(spec["num_channels"]), _dtype(spec.get("dtype")), device)


def make_text_input(metadata: Mapping, batch: int = 1, device: Any = "cpu", parser: Any = None) -> Any:
    """A random ``text`` input for ``batch`` items following the metadata ``text`` argument.

    See the module docstring for the formats. Returns ``None`` when metadata declares no
    ``text`` input. ``parser`` (a ConfigParser): its ``text_example`` id, when defined,
    wins.
    """
    if parser is not None and "text_example" in parser:
        return parser.get_parsed_content("text_example")(batch)
    spec = metadata.get("network_data_format", {}).get("inputs", {}).get("text")
    if spec is None:
        return None
    return _text_from_spec(spec, batch, device, "text-features")


def make_network_inputs(metadata: Mapping, batch: int = 1, device: Any = "cpu", parser: Any = None) -> tuple:
    """Random positional arguments of the network's forward, as ``network_data_format.inputs`` declares them.

    ``(image, text_tokens, text_mask)`` (or ``(image, text_tokens)``) for the typed text inputs,
    ``(image, text)`` for one ``text`` input, ``(image,)`` without text; the image from
    :func:`make_image_input`. ``parser``'s ``text_example`` id, when defined, gives the text
    (a plain tuple is spread into several arguments).
    """
    image = make_image_input(metadata, batch=batch, device=device)
    if parser is not None and "text_example" in parser:
        text = parser.get_parsed_content("text_example")(batch)
        spread = isinstance(text, tuple) and not hasattr(text, "_fields")  # a NamedTuple is one argument
        return (image, *text) if spread else (image, text)
    inputs = metadata.get("network_data_format", {}).get("inputs", {})
    if "text_tokens" in inputs:
        tokens = _text_from_spec(inputs["text_tokens"], batch, device, "token-features")
        if "text_mask" not in inputs:
            return image, tokens
        return image, tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=device)
    text = make_text_input(metadata, batch=batch, device=device)
    return (image,) if text is None else (image, text)


def network_output(out: Any) -> torch.Tensor:
    """The prediction tensor of a forward result (a dict's ``"pred"``, a sequence's first item)."""
    if isinstance(out, Mapping):
        out = out["pred"]
    elif isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"network output is not a tensor: {type(out)}")
    return out
