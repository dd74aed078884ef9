"""A bundle's inference pipeline, taken from its configs, to run on one input at a time from Python.

The configs are the one definition of the pipeline (``preprocessing``, ``network``, ``inferer``,
``postprocessing``, ``prepare_batch``); ``SupervisedEvaluator`` runs it over a dataset, and
:class:`BundlePipeline` runs the same objects step by step for tools and tests that need the
probabilities before the threshold, or one input at a time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from monai_ext.bundle.config import load_parser

if TYPE_CHECKING:  # importing monai.bundle / monai.transforms takes seconds: only when a pipeline is built
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

__all__ = ["BundlePipeline"]


class BundlePipeline:
    """The parsed ``preprocessing``, ``network``, ``inferer``, ``postprocessing`` and ``prepare_batch`` of a bundle config.

    ``pipeline(item)`` is what the config's ``SupervisedEvaluator`` does with one dataset item:
    preprocess it, run the inferer on the network in eval mode without gradients, post-process.
    The steps are also callable one by one (:meth:`preprocess`, :meth:`predict`,
    :meth:`postprocess`), and :meth:`postprocess` can run part of the post-processing.

    Args:
        parser: a parsed bundle config (:func:`monai_ext.bundle.load_parser`); its ``initialize`` expressions
            (loading the weights) are run unless ``initialize`` is False.
        initialize: run the config's ``initialize`` ids.
    """

    def __init__(self, parser: ConfigParser, initialize: bool = True) -> None:
        self.parser = parser
        if initialize and "initialize" in parser:
            parser.get_parsed_content("initialize")
        self.preprocessing: Compose = parser.get_parsed_content("preprocessing")
        self.network: torch.nn.Module = parser.get_parsed_content("network")
        self.inferer = parser.get_parsed_content("inferer")
        self.postprocessing: Compose = parser.get_parsed_content("postprocessing")
        self.prepare_batch = parser.get_parsed_content("prepare_batch")
        self.device = parser.get_parsed_content("device")

    @classmethod
    def from_bundle(
        cls, bundle: str | os.PathLike, config: str | Sequence[str] = "inference.json", overrides: Mapping[str, Any] | None = None
    ) -> BundlePipeline:
        """The pipeline of ``bundle``'s ``config`` (see :func:`monai_ext.bundle.load_parser`), weights loaded."""
        return cls(load_parser(bundle, config, overrides=overrides))

    def preprocess(self, item: Mapping[str, Any], start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """The preprocessing transforms ``start:stop`` applied to one item (e.g. ``{"image": path, "prompt": text}``)."""
        return self.preprocessing(dict(item), start=start, end=stop)

    @torch.no_grad()
    def predict(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` with ``"pred"``: the inferer's output for the preprocessed frames, as the evaluator makes it."""
        image, _, args, kwargs = self.prepare_batch(dict(data), self.device, False)
        self.network.eval()
        return {**data, "image": image, "pred": self.inferer(image, self.network, *args, **kwargs)}

    def postprocess(self, data: Mapping[str, Any], start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """The post-processing transforms ``start:stop`` applied to ``data``."""
        return self.postprocessing(dict(data), start=start, end=stop)

    def index_of(self, transform_type: type) -> int:
        """Position of the first post-processing transform of ``transform_type``.

        Raises:
            ValueError: there is none.
        """
        for i, transform in enumerate(self.postprocessing.transforms):
            if isinstance(transform, transform_type):
                return i
        raise ValueError(f"the post-processing has no {transform_type.__name__}")

    def __call__(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return self.postprocess(self.predict(self.preprocess(item)))
