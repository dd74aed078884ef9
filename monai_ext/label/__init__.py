"""MONAI Label with text prompts: every installed bundle is a model whose ``params.prompt`` names the target.

``monai-ext label --studies DIR [--port N]`` starts MONAI Label's server (``monailabel start_server``) with
the app folder shipped here (:data:`APP_DIR`, whose ``main.py`` holds
:class:`~monai_ext.label.app.TextPromptLabelApp`). Needs the ``label`` extra (README, "MONAI Label").

MONAI Label 0.8.5 imports ``pydicom_seg``, which reads ``pydicom._storage_sopclass_uids``, a module
pydicom 3 (needed by highdicom for our DICOM SEG) no longer has; the same UIDs are in ``pydicom.uid``,
so importing this package names that module under the old name before MONAI Label is imported.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["APP_DIR", "start_server"]

#: the MONAI Label app folder shipped with the package
APP_DIR = Path(__file__).resolve().parent / "monailabel_app"


def _pydicom_sop_class_alias() -> None:
    import pydicom.uid

    sys.modules.setdefault("pydicom._storage_sopclass_uids", pydicom.uid)


_pydicom_sop_class_alias()


def start_server(
    studies: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    bundles_dir: str | os.PathLike | None = None,
    device: str = "auto",
    app_dir: str | os.PathLike | None = None,
    extra_args: Sequence[str] = (),
) -> None:
    """Run MONAI Label's server over ``studies`` with the bundles as models, until it is stopped.

    Args:
        studies: the studies folder (images MONAI Label lists as its datastore) or a DICOMweb URL.
        host: address to listen on (127.0.0.1: this machine only).
        port: port to listen on.
        bundles_dir: folder of installed bundles (default: the project's ``bundles/`` or ``$MONAI_EXT_BUNDLES``).
        device: ``auto``, ``cpu`` or ``cuda[:N]`` for every model.
        app_dir: a writable copy of the app folder (MONAI Label writes ``logs/`` and ``model/`` into
            it); default: a temporary folder removed when the server stops.
        extra_args: more ``monailabel start_server`` options.

    Raises:
        ImportError: MONAI Label is not installed (the message says how).
        FileNotFoundError: ``studies`` is not a folder (nor a URL).
    """
    # MONAI Label's own settings are environment variables read at import: no training, scoring or
    # active learning here (the bundles train with their own train.json).
    for name in ("MONAI_LABEL_TASKS_TRAIN", "MONAI_LABEL_TASKS_SCORING", "MONAI_LABEL_TASKS_STRATEGY"):
        os.environ.setdefault(name, "false")
    try:
        from monailabel.main import Main
    except ImportError as e:
        raise ImportError(
            f"MONAI Label is not installed ({e}); install it with: pip install -e \".[label]\" && "
            "pip install --no-deps -r requirements-label.txt"
        ) from None
    if not str(studies).startswith(("http://", "https://")) and not Path(studies).is_dir():
        raise FileNotFoundError(f"--studies {studies}: not a folder")
    own_folder = app_dir is None
    work = Path(tempfile.mkdtemp(prefix="monai-ext-label-app-")) if own_folder else Path(app_dir)
    try:
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(APP_DIR / "main.py", work / "main.py")
        conf = ["--conf", "device", device]
        if bundles_dir is not None:
            conf += ["--conf", "bundles_dir", str(Path(bundles_dir).resolve())]
        main = Main()
        args = main.args_parser().parse_args(
            ["start_server", "--app", str(work), "--studies", str(studies), "--host", host, "--port", str(port), *conf, *extra_args]
        )
        main.action_start_server(args)
    finally:
        if own_folder:
            shutil.rmtree(work, ignore_errors=True)
