"""A real MONAI Label server (``monai-ext label``) on 127.0.0.1: text-prompted infer, the same mask as the command line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests

import monailabel  # noqa: F401 - the label extra is part of README's install: missing, this fails rather than skips

from monai_ext.cli import main
from monai_ext.label.infer import MAX_PROMPT_CHARACTERS, check_request_params, PromptError
from monai_ext.sample import sample_path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "reclmis_language_guided_segmentation"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``monai-ext label`` over a studies folder holding the shipped CT sample; stopped at the end, whatever happens."""
    root = tmp_path_factory.mktemp("label")
    studies = root / "studies"
    studies.mkdir()
    shutil.copyfile(sample_path("ct_small"), studies / "ct.nii.gz")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "monai_ext.cli", "label", "--studies", str(studies), "--port", str(port), "--app-dir", str(root / "app")],
        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}): {(root / 'server.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/info/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /info/ within 180 s: {(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "studies": studies, "root": root}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        with socket.socket() as s:  # the port is free again: nothing left listening
            assert s.connect_ex(("127.0.0.1", port)) != 0


def _infer(server, model: str, image: str, params: dict, output: str | None = None) -> requests.Response:
    query = {"image": image, **({"output": output} if output else {})}
    return requests.post(f"{server['url']}/infer/{model}", params=query, data={"params": json.dumps(params)}, timeout=300)


def test_info_lists_each_bundle_with_its_prompt_support(server):
    info = requests.get(f"{server['url']}/info/", timeout=30).json()
    assert set(info["models"]) == {MODEL, "tgsam2_text_guided_sequence_segmentation"}
    for model in info["models"].values():
        assert model["type"] == "segmentation" and model["version"]
        assert model["prompt"]["param"] == "prompt" and model["prompt"]["type"] == "text" and model["prompt"]["required"]
        assert model["prompt"]["max_characters"] == MAX_PROMPT_CHARACTERS
        assert "liver" in model["prompt"]["targets"]["ct"] and "polyp" in model["prompt"]["targets"]["endoscopy"]
    datastore = requests.get(f"{server['url']}/datastore/?output=all", timeout=30).json()
    assert "ct" in datastore["objects"]


def test_label_equals_the_command_line_mask(server, tmp_path):
    answer = _infer(server, MODEL, "ct", {"prompt": "liver"}, output="image")
    assert answer.status_code == 200, answer.text
    label_file = tmp_path / "label.nii.gz"
    label_file.write_bytes(answer.content)
    label = nib.load(label_file)

    assert main(["segment", str(server["studies"] / "ct.nii.gz"), "--prompt", "liver", "--output", str(tmp_path / "cli"),
                 "--bundle", MODEL, "--quiet"]) == 0
    reference = nib.load(tmp_path / "cli" / "ct_mask.nii.gz")
    mask, expected = np.asarray(label.dataobj) > 0, np.asarray(reference.dataobj) > 0
    assert expected.sum() > 1000  # the liver is there: an empty mask would match an empty mask
    dice = 2 * (mask & expected).sum() / (mask.sum() + expected.sum())
    assert dice == 1.0
    np.testing.assert_allclose(label.affine, reference.affine, atol=1e-5)

    params = _infer(server, MODEL, "ct", {"prompt": "the spleen"}, output="json").json()
    assert params["typed_prompt"] == "the spleen" and params["target"] == "spleen" and params["target_similarity"] > 0.9
    assert params["bundle"] == MODEL and isinstance(params["target_present"], bool)
    assert len(params["frame_scores"]) == params["n_frames"] == 30


@pytest.mark.parametrize(
    "model, image, params, status, message",
    [
        ("no_such_model", "ct", {"prompt": "liver"}, 404, "no model 'no_such_model'"),
        (MODEL, "ct", {"prompt": ""}, 400, "params.prompt is missing or empty"),
        (MODEL, "ct", {}, 400, "params.prompt is missing or empty"),
        (MODEL, "ct", {"prompt": "x" * (MAX_PROMPT_CHARACTERS + 1)}, 400, f"at most {MAX_PROMPT_CHARACTERS}"),
        (MODEL, "../studies/ct", {"prompt": "liver"}, 400, "not a datastore image id"),
        (MODEL, "/etc/hostname", {"prompt": "liver"}, 400, "not a datastore image id"),
        (MODEL, "absent", {"prompt": "liver"}, 404, "not in the datastore"),
        (MODEL, "ct", {"prompt": "$__import__('os').getpid()"}, 400, "config syntax"),
        (MODEL, "ct", {"prompt": "the liver and the spleen"}, 400, "one target per prompt"),
        (MODEL, "ct", {"prompt": "not the liver"}, 400, "negat"),
    ],
)
def test_bad_requests_are_refused_with_a_message(server, model, image, params, status, message):
    answer = _infer(server, model, image, params)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]


def test_dicom_series_answers_a_dicom_seg_equal_to_the_command_line_mask(tmp_path):
    """What the task answers when MONAI Label hands it a DICOM series folder (a DICOMweb datastore with
    MONAI_LABEL_DICOMWEB_CONVERT_TO_NIFTI=false): a DICOM SEG of the mask the command line writes."""
    import highdicom as hd

    from monai_ext.io import load_source, write_dicom_series
    from monai_ext.label.infer import TextPromptInferTask

    ct = load_source(sample_path("ct_small"))
    write_dicom_series(np.asarray(ct[0]), np.asarray(ct.affine), tmp_path / "series")
    task = TextPromptInferTask(REPO_ROOT / "bundles" / MODEL, device="cpu")
    label_file, params = task({"image": str(tmp_path / "series"), "prompt": "the liver"})
    try:
        seg = hd.seg.segread(label_file)
        assert label_file.endswith(".dcm") and seg.SegmentSequence[0].SegmentLabel == "liver"
        assert params["target"] == "liver" and params["bundle"] == MODEL
        assert main(["segment", str(tmp_path / "series"), "--prompt", "the liver", "--output", str(tmp_path / "cli"),
                     "--bundle", MODEL, "--quiet"]) == 0
        reference = hd.seg.segread(tmp_path / "cli" / "series_seg.dcm")
        assert reference.pixel_array.any()
        np.testing.assert_array_equal(seg.pixel_array, reference.pixel_array)
        assert seg.SeriesDescription == reference.SeriesDescription == "the liver"
    finally:
        os.remove(label_file)


def test_request_params_checked_before_any_work():
    assert check_request_params({"prompt": "liver", "modality": "ct"})["modality"] == "ct"
    for bad in ({"prompt": 3}, {"prompt": "liver", "report": ["a"]}, {"prompt": "liver", "modality": "xray"},
                {"prompt": "liver", "device": "tpu"}, {"prompt": "liver", "series": "@device"}):
        with pytest.raises(PromptError):
            check_request_params(bad)
