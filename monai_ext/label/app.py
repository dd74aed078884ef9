"""The MONAI Label app: every installed bundle an infer task with a text prompt."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask

import monai_ext
from monai_ext.cli import root_cause
from monai_ext.label.infer import PromptError, TextPromptInferTask, check_request_params

__all__ = ["TextPromptLabelApp"]

#: a datastore image id: a name, never a path
_IMAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")


def _http_error(status: int, message: str) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=status, detail=message)


class TextPromptLabelApp(MONAILabelApp):
    """MONAI Label app serving the project's bundles (``monai-ext label`` starts it).

    ``conf`` (``--conf KEY VALUE`` of ``monailabel start_server``): ``bundles_dir`` (default: the
    project's ``bundles/`` or ``$MONAI_EXT_BUNDLES``), ``device`` (``auto``, ``cpu``, ``cuda[:N]``).
    A request is checked before any work: an unknown model answers 404, an image id that is not a
    datastore name (a path, ``../``) 400, an unknown image 404, a missing, empty or over-long prompt 400;
    a prompt or image the bundle refuses (two targets, a negation, an unknown target, NaN voxels) 400
    with the bundle's one-line message.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        from monai_ext.bundle import REPO_ROOT

        self.bundles_dir = Path(conf.get("bundles_dir") or os.environ.get("MONAI_EXT_BUNDLES") or REPO_ROOT / "bundles")
        self.device = conf.get("device", "auto")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="monai_ext",
            description="Text-prompted segmentation of medical image sequences: params.prompt names the target",
            version=monai_ext.__version__,
        )

    def init_infers(self) -> dict[str, InferTask]:
        folders = sorted(p for p in self.bundles_dir.glob("*") if (p / "configs" / "metadata.json").is_file())
        return {folder.name: TextPromptInferTask(folder, device=self.device) for folder in folders}

    def init_strategies(self) -> dict[str, Any]:
        return {}

    def infer(self, request: dict[str, Any], datastore: Any = None) -> dict[str, Any]:
        model = request.get("model")
        if model not in self._infers or not self._infers[model].is_valid():
            raise _http_error(404, f"no model {model!r}; models: {sorted(k for k, v in self._infers.items() if v.is_valid())}")
        if "session" not in request:  # a session's image is the server's own upload; anything else must be a datastore id
            image = request.get("image")
            if not isinstance(image, str) or not _IMAGE_ID.match(image) or ".." in image:
                raise _http_error(400, f"image {str(image)[:80]!r}: not a datastore image id (a name from /datastore/, not a path)")
            store = datastore if datastore is not None else self.datastore()
            if image not in store.list_images():
                raise _http_error(404, f"image {image!r} is not in the datastore")
        try:
            check_request_params(request)
        except PromptError as e:
            raise _http_error(400, str(e)) from None
        try:
            return super().infer(request, datastore)
        except Exception as error:  # noqa: BLE001 - the bundle's refusals of the input or prompt are the client's to fix
            cause = root_cause(error)
            if isinstance(cause, (ValueError, KeyError)):
                message = cause.args[0] if type(cause) is KeyError and cause.args else cause
                raise _http_error(400, " ".join(str(message).split())) from None
            raise
