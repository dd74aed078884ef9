"""The ``monai-ext`` command line: the bundles' own pipelines behind it, one-line errors, nothing written on a bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_ext.cli import MAX_PROMPT_CHARACTERS, main
from monai_ext.sample import sample_path

REPO = Path(__file__).resolve().parents[1]
RECLMIS = REPO / "bundles" / "reclmis_language_guided_segmentation"


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The installed console script's code, as a user runs it (a fresh process)."""
    return subprocess.run([sys.executable, "-m", "monai_ext.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_bundles_lists_the_installed_bundles_with_their_measured_dice(capsys):
    assert main(["bundles", "--json"]) == 0
    rows = {r["bundle"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) >= {"reclmis_language_guided_segmentation", "tgsam2_text_guided_sequence_segmentation"}
    meta = json.loads((RECLMIS / "configs" / "metadata.json").read_text())
    row = rows[RECLMIS.name]
    assert row["version"] == meta["version"] and row["validation_dice"] == meta["eval_metrics"]["mean_dice"]
    assert main(["bundles"]) == 0 and "validation Dice 0.779" in capsys.readouterr().out


def test_prompts_resolves_a_query_and_lists_targets_per_modality(capsys):
    assert main(["prompts", "kidney_left"]) == 0
    out = capsys.readouterr().out
    assert "-> left kidney" in out and "ct" in out
    assert main(["prompts", "--modality", "endoscopy"]) == 0
    assert capsys.readouterr().out.startswith("endoscopy (1): polyp")


def test_segment_runs_the_bundle_config_and_writes_what_monai_bundle_run_writes(tmp_path):
    ct = sample_path("ct_small")
    cli = run_cli("segment", str(ct), "--prompt", "the spleen", "--output", str(tmp_path / "cli"))
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip().splitlines()[-1] == f"spleen: 7/30 frames; masks in {tmp_path / 'cli'}"
    assert "30/30" in cli.stderr and "error" not in cli.stderr.lower()  # the progress bar over the 30 slices, nothing else
    bundle = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(RECLMIS / "configs" / "inference.json"),
         "--bundle_root", str(RECLMIS), "--input", str(ct), "--prompt", "the spleen", "--output_dir", str(tmp_path / "bundle")],
        capture_output=True, text=True, timeout=600,
    )
    assert bundle.returncode == 0, bundle.stderr[-2000:]
    ours, theirs = (np.asarray(nib.load(tmp_path / d / "ct_mask.nii.gz").dataobj) for d in ("cli", "bundle"))
    assert ours.any() and np.array_equal(ours, theirs)
    summary = json.loads((tmp_path / "cli" / "ct_prediction.json").read_text())
    assert summary["target"] == "spleen" and summary["modality"] == "ct"


def test_quiet_prints_nothing(tmp_path, capsys):
    assert main(["segment", str(sample_path("cvc_frames")), "--prompt", "polyp", "--output", str(tmp_path), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == captured.err == "" and len(list((tmp_path / "frames").glob("*_mask.png"))) == 10


def _volume(path: Path, array: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(array, np.eye(4)), path)
    return str(path)


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(arguments, words the one-line error must hold) of inputs the command refuses: the bad-input corpus."""
    from PIL import Image

    from monai_ext.io import load_source, write_dicom_series

    truncated = tmp_path / "truncated.nii.gz"
    data = sample_path("ct_small").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    not_a_folder = tmp_path / "a_file"
    not_a_folder.write_text("x")
    corrupt_png = tmp_path / "corrupt.png"
    corrupt_png.write_bytes((sample_path("cvc_frames") / "1.png").read_bytes()[:300])
    empty_video = tmp_path / "empty.mp4"
    empty_video.write_bytes(b"")
    noise_video = tmp_path / "noise.mp4"
    noise_video.write_bytes(np.random.default_rng(0).bytes(4096))
    nan = np.zeros((16, 16, 4), np.float32)
    nan[3, 3, 1] = np.nan
    inf = np.zeros((16, 16, 4), np.float32)
    inf[2, 2, 2] = np.inf
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tiny)
    empty_folder = tmp_path / "empty_folder"
    empty_folder.mkdir()
    ct = load_source(sample_path("ct_small"))
    volume, affine = np.asarray(ct[0])[:, :, :6], np.asarray(ct.affine)
    gap = write_dicom_series(volume, affine, tmp_path / "gap_series")
    gap[3].unlink()  # a missing slice
    study = tmp_path / "study"
    write_dicom_series(volume, affine, study / "a", series_number=3, series_description="arterial")
    write_dicom_series(volume, affine, study / "b", series_number=4, series_description="venous")
    frames = str(sample_path("cvc_frames"))
    return [
        (["segment", frames, "--prompt", "flux capacitor"], "unknown prompt 'flux capacitor'"),
        (["segment", frames, "--prompt", "   "], "--prompt is empty"),
        (["segment", frames, "--prompt", "polyp " * (MAX_PROMPT_CHARACTERS // 6 + 1)], "characters (at most 1000)"),
        (["segment", frames, "--prompt", "the left kidney and the spleen"], "one target per prompt"),
        (["segment", frames, "--prompt", "not the liver"], "negates with 'not'"),
        (["segment", str(tmp_path / "missing.nii.gz"), "--prompt", "liver"], "missing.nii.gz: file or folder not found"),
        (["segment", str(truncated), "--prompt", "liver"], "truncated.nii.gz"),
        (["segment", str(corrupt_png), "--prompt", "polyp"], "corrupt.png"),
        (["segment", str(empty_video), "--prompt", "polyp"], "empty.mp4"),
        (["segment", str(noise_video), "--prompt", "polyp"], "noise.mp4"),
        (["segment", _volume(tmp_path / "nan.nii.gz", nan), "--prompt", "liver"], "NaN"),
        (["segment", _volume(tmp_path / "inf.nii.gz", inf), "--prompt", "liver"], "inf.nii.gz"),
        (["segment", _volume(tmp_path / "4d.nii.gz", np.zeros((8, 8, 4, 3), np.float32)), "--prompt", "liver"], "4d.nii.gz"),
        (["segment", str(tiny), "--prompt", "breast lesion"], "tiny.png"),
        (["segment", str(empty_folder), "--prompt", "liver"], "empty folder"),
        (["segment", str(tmp_path / "gap_series"), "--prompt", "liver"], "gap_series"),
        (["segment", str(study), "--prompt", "liver"], "--series"),
        (["segment", str(study), "--prompt", "liver", "--series", "9"], "--series"),
        (["segment", frames, "--prompt", "polyp", "--output", frames], "must not be the input"),
        (["segment", frames, "--prompt", "polyp", "--output", str(not_a_folder / "out")], "not a writable folder"),
        (["segment", frames, "--prompt", "polyp", "--bundle", "no_such_bundle"], "no bundle 'no_such_bundle'"),
        (["segment", frames, "--prompt", "polyp", "--override", "threshold"], "--override takes ID=VALUE"),
        (["segment", frames, "--prompt", "polyp", "--format", "dicom-seg"], "does not fit a frames input"),
        (["segment", frames, "--prompt", "polyp", "--format", "gif"], "--format gif: unknown"),
        (["segment", frames, "--prompt", "$__import__('os').getpid()"], "config syntax"),  # never run as Python
        (["segment", frames, "--prompt", "polyp", "--report", "@device"], "config syntax"),
        (["segment", "--datalist", str(tmp_path / "absent.json"), "--prompt", "polyp"], "--datalist"),
        (["segment", frames, "--studies", str(tmp_path), "--prompt", "polyp"], "give one input"),
    ]


def test_bad_inputs_give_one_line_a_non_zero_exit_and_write_nothing(tmp_path, capsys):
    corpus = _bad_inputs(tmp_path)
    assert len(corpus) >= 20
    for args, words in corpus:
        out = tmp_path / "out"
        arguments = args if "--output" in args else [*args, "--output", str(out)]
        status = main(arguments)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert status == 2, (args, captured.err)
        assert len(lines) == 1 and lines[0].startswith("monai-ext: error: ") and words in lines[0], (args, captured.err)
        assert not out.exists() or not any(out.rglob("*")), (args, sorted(out.rglob("*")))


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "segment", str(sample_path("cvc_frames")), "--prompt", "flux capacitor", "--output", str(tmp_path))
    assert result.returncode != 0 and "Traceback" in result.stderr and "UnknownPromptError" in result.stderr


def test_segment_a_dicom_series_writes_a_dicom_seg_equal_to_the_nifti(tmp_path):
    """The shipped CT written as a DICOM series: monai-ext writes the NIfTI and a DICOM SEG of the same mask."""
    import highdicom as hd

    from monai_ext.io import load_source, write_dicom_series

    ct = load_source(sample_path("ct_small"))
    files = write_dicom_series(np.asarray(ct[0]), np.asarray(ct.affine), tmp_path / "ct_series", shuffle_names=True)
    assert main(["segment", str(tmp_path / "ct_series"), "--prompt", "the liver", "--output", str(tmp_path / "out"), "--quiet"]) == 0
    nifti = np.asarray(nib.load(tmp_path / "out" / "ct_series_mask.nii.gz").dataobj) > 0
    seg = hd.seg.segread(tmp_path / "out" / "ct_series_seg.dcm")
    assert nifti.any() and seg.SegmentSequence[0].SegmentLabel == "liver" and seg.SeriesDescription == "the liver"
    # SEG frames -> the series' slices, by the SOP instance each frame references
    series = load_source(tmp_path / "ct_series")
    slice_of = {uid: z for z, uid in enumerate(series.meta["sop_instance_uids"])}
    pixels = seg.pixel_array.reshape(-1, *seg.pixel_array.shape[-2:])
    rebuilt = np.zeros_like(nifti)
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        rebuilt[:, :, slice_of[uid]] = frame.T > 0  # mask (x, y) is pixel (row y, column x)
    assert np.array_equal(rebuilt, nifti) and len(files) == nifti.shape[-1]
