"""tools/prepare_dataset.py and monai_ext.data.converters on the real data in ../shared/data."""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from monai.data import load_decathlon_datalist
from PIL import Image

from monai_ext.data.converters import (
    CONVERTERS,
    ConversionError,
    assign_splits,
    build_datalist,
    prepare_dataset,
    split_sequence_ids,
    totalseg_target_name,
)
from monai_ext.data.converters._common import SAMPLE_KEYS, natural_key

SPLITS = ("training", "validation", "test")
TOOL = Path(__file__).resolve().parents[1] / "tools" / "prepare_dataset.py"


def _samples(datalist: dict) -> list[dict]:
    return [s for name in SPLITS for s in datalist[name]]


def _paths(value) -> list[str]:
    return [] if value is None else ([value] if isinstance(value, str) else list(value))


def check_datalist(path: Path, fmt: str) -> dict:
    """Schema of DESIGN.md section 4; returns the loaded json."""
    d = json.loads(path.read_text())
    assert d["schema_version"] == 1 and d["format"] == fmt and os.path.isabs(d["source"])
    samples = _samples(d)
    assert samples
    ids = [s["id"] for s in samples]
    assert len(ids) == len(set(ids))
    seq_split: dict[str, str] = {}
    for name in SPLITS:
        for s in d[name]:
            assert set(SAMPLE_KEYS) <= set(s), s["id"]
            assert s["split"] == name
            assert seq_split.setdefault(s["sequence_id"], name) == name, f"{s['sequence_id']} in two splits"
            assert s["modality"] in ("endoscopy", "ct", "mr", "ultrasound")
            assert s["target"] and isinstance(s["label_values"], list) and s["label_values"]
            assert type(s["image"]) is type(s["label"]), s["id"]
            for p in _paths(s["image"]) + _paths(s["label"]):
                assert os.path.isabs(p) and os.path.isfile(p), p
            if isinstance(s["image"], list):
                assert len(s["image"]) == len(s["label"])
                assert [Path(p).name for p in s["image"]] == [Path(p).name for p in s["label"]] or s[
                    "dataset"
                ] != "cvc_clinicdb"
    if len(seq_split) >= 3:
        assert all(d[name] for name in SPLITS), "a split is empty"
    training = load_decathlon_datalist(str(path), data_list_key="training")
    assert len(training) == len(d["training"])
    return d


# ----------------------------------------------------------------------------- real data
REAL = {
    "cvc-clinicdb": "cvc_clinicdb",
    "totalsegmentator": "totalseg",
    "acdc": "acdc",
    "carotid-us": "carotid_us",
    "busbra": "busbra",
    "brats": "brats2013",
    "ultrasound-stills": "ultrasound_stills",
    "btcv": "btcv",
    "chaos-mr": "chaos_mr_t2",
    "kvasir-seg": "kvasir_seg",
}


@pytest.fixture(scope="module")
def converted(shared_data, tmp_path_factory):
    """Every shared-data folder converted once with its format."""
    out = {}
    for fmt, folder in REAL.items():
        dest = tmp_path_factory.mktemp(folder)
        path, summary = prepare_dataset(fmt, shared_data / folder, dest, seed=0)
        assert path == dest / "datalist.json"
        out[fmt] = (check_datalist(path, fmt), summary)
    return out


def test_every_shared_folder_has_a_format(shared_data):
    folders = {p.name for p in shared_data.iterdir() if p.is_dir()}
    assert folders == set(REAL.values())
    assert set(REAL) <= set(CONVERTERS)


def test_cvc_clinicdb(converted, shared_data):
    d, summary = converted["cvc-clinicdb"]
    blocks = json.loads((shared_data / "cvc_clinicdb" / "sequences.json").read_text())["sequences"]
    samples = _samples(d)
    assert len(samples) == len(blocks) == 13
    by_id = {s["id"]: s for s in samples}
    for b in blocks:
        s = by_id[b["id"]]
        assert [int(Path(p).stem) for p in s["image"]] == list(range(b["first"], b["last"] + 1))
        assert [Path(p).parent.name for p in s["label"]] == ["Ground Truth"] * len(s["label"])
        assert s["target"] == "polyp" and s["modality"] == "endoscopy" and s["sequence_id"] == b["id"]
        assert s["label_values"] == [255]
    assert sum(len(s["image"]) for s in samples) == 453
    assert "training" in summary


def test_totalsegmentator(converted, shared_data):
    import nibabel as nib

    d, summary = converted["totalsegmentator"]
    samples = _samples(d)
    expected = 0
    for case in ("ct_small", "mr_small"):
        seg = nib.load(str(shared_data / "totalseg" / case / "seg.nii.gz"))
        ids = set(np.unique(np.asanyarray(seg.dataobj)).tolist()) - {0}
        mine = [s for s in samples if s["sequence_id"] == f"totalseg_{case}"]
        assert {s["label_values"][0] for s in mine} == ids
        assert {s["modality"] for s in mine} == {case[:2]}
        assert {s["split"] for s in mine} == {mine[0]["split"]}  # one volume, one split
        expected += len(ids)
    assert len(samples) == expected == 64
    targets = {s["target"] for s in samples}
    assert {"left kidney", "right adrenal gland", "left lung upper lobe", "spleen", "small bowel"} <= targets
    assert not any("_" in t for t in targets)
    assert not any("ct_long_unlabeled" in p for s in samples for p in _paths(s["image"]))
    assert "ct_long_unlabeled" in summary


def test_totalsegmentator_single_case_folder(shared_data, tmp_path):
    d, notes = build_datalist("totalsegmentator", shared_data / "totalseg" / "mr_small")
    assert len(_samples(d)) == 23 and all(s["modality"] == "mr" for s in _samples(d))
    with pytest.raises(ConversionError, match="no samples"):
        build_datalist("totalsegmentator", shared_data / "totalseg" / "ct_long_unlabeled")


def test_acdc(converted, shared_data):
    d, _ = converted["acdc"]
    samples = _samples(d)
    patients = sorted(p.name for p in (shared_data / "acdc").iterdir() if p.is_dir())
    assert len(samples) == len(patients) * 2 * 3 == 120
    assert {s["target"]: s["label_values"] for s in samples} == {
        "right ventricle": [1],
        "myocardium": [2],
        "left ventricle": [3],
    }
    assert {s["sequence_id"] for s in samples} == {f"acdc_{p}" for p in patients}
    for s in samples:
        assert s["label"] == s["image"].replace(".nii.gz", "_gt.nii.gz")


def test_carotid_us(converted, shared_data):
    d, _ = converted["carotid-us"]
    samples = _samples(d)
    names = os.listdir(shared_data / "carotid_us" / "US images")
    acqs = {n.split("VAS_slice_")[0] for n in names}
    assert len(samples) == len(acqs) == 10
    assert sum(len(s["image"]) for s in samples) == len(names)
    for s in samples:
        n = [int(re.search(r"VAS_slice_(\d+)", p).group(1)) for p in s["image"]]
        assert n == sorted(n)
        assert [Path(p).name for p in s["image"]] == [Path(p).name for p in s["label"]]
        assert s["target"] == "common carotid artery" and s["modality"] == "ultrasound"


def test_busbra(converted, shared_data):
    d, _ = converted["busbra"]
    samples = _samples(d)
    with open(shared_data / "busbra" / "bus_data.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(samples) == len(rows)  # 534 in this copy (README says 440)
    by_id = {s["id"]: s for s in samples}
    s = by_id["busbra_0007-l"]
    assert s["report"] == "benign hyperplasia, BI-RADS 4, left view"
    assert s["sequence_id"] == by_id["busbra_0007-r"]["sequence_id"] == "busbra_case0007"
    assert s["split"] == by_id["busbra_0007-r"]["split"]
    assert Path(s["label"]).name == "mask_0007-l.png"
    assert {x["target"] for x in samples} == {"breast lesion"}
    assert len({x["sequence_id"] for x in samples}) == len({r["Case"] for r in rows})


def test_brats(converted):
    d, _ = converted["brats"]
    samples = _samples(d)
    assert len(samples) == 4 * 5
    whole = [s for s in samples if s["target"] == "brain tumour"]
    assert len(whole) == 4 and all(s["label_values"] == [1, 2, 3, 4] for s in whole)
    assert {s["target"] for s in samples} == {"necrosis", "oedema", "non-enhancing tumour", "enhancing tumour", "brain tumour"}
    assert all(s["image"].endswith("flair.nii.gz") and s["modality"] == "mr" for s in samples)


def test_ultrasound_stills(converted):
    d, _ = converted["ultrasound-stills"]
    samples = _samples(d)
    assert sorted(s["target"] for s in samples) == sorted(
        ["breast lesion", "left ventricle", "left atrium", "pubic symphysis", "fetal head"]
    )
    for s in samples:
        assert Path(s["label"]).stem.startswith(Path(s["image"]).stem + "_")
    heart = [s for s in samples if "heart" in s["image"]]
    assert len({s["split"] for s in heart}) == 1 and len(heart) == 2


# ----------------------------------------------------------------------------- splits, names
def _split_of(ids, ratios=(0.7, 0.15, 0.15), seed=0) -> dict[str, str]:
    samples = [{"id": i, "sequence_id": i} for i in ids]
    assign_splits(samples, ratios, seed)
    return {s["id"]: s["split"] for s in samples}


@pytest.mark.parametrize("split_fn", [_split_of, split_sequence_ids], ids=["assign_splits", "fallback"])
def test_split_deterministic_and_complete(split_fn):
    ids = [f"s{i}" for i in range(40)]
    a = split_fn(ids, (0.7, 0.15, 0.15), seed=0)
    assert a == split_fn(list(reversed(ids)), "0.7,0.15,0.15", seed=0)
    assert a != split_fn(ids, (0.7, 0.15, 0.15), seed=1)
    assert set(a) == set(ids)
    counts = {n: sum(v == n for v in a.values()) for n in SPLITS}
    assert counts == {"training": 28, "validation": 6, "test": 6}
    for n in range(3, 8):
        assert set(split_fn([str(i) for i in range(n)]).values()) == set(SPLITS)
    assert set(split_fn(["a"]).values()) == {"training"}
    assert set(split_fn([str(i) for i in range(10)], (1, 0, 0)).values()) == {"training"}


def test_datalist_deterministic_for_seed(shared_data):
    a, _ = build_datalist("carotid-us", shared_data / "carotid_us", seed=3)
    b, _ = build_datalist("carotid-us", shared_data / "carotid_us", seed=3)
    assert a == b


@pytest.mark.parametrize(
    "raw,name",
    [
        ("kidney_left", "left kidney"),
        ("adrenal_gland_right", "right adrenal gland"),
        ("lung_upper_lobe_left", "left lung upper lobe"),
        ("iliac_artery_left", "left iliac artery"),
        ("urinary_bladder", "urinary bladder"),
        ("spleen", "spleen"),
    ],
)
def test_totalseg_rule_r(raw, name):
    assert totalseg_target_name(raw) == name


def test_natural_key():
    assert sorted(["f10.png", "f2.png", "f1.png"], key=natural_key) == ["f1.png", "f2.png", "f10.png"]


# ----------------------------------------------------------------------------- generic formats
def _link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)
    return dst


def test_nifti_pairs_both_layouts(shared_data, tmp_path):
    acdc = shared_data / "acdc"
    a = tmp_path / "a"
    b = tmp_path / "b"
    for p in ("patient001", "patient002", "patient008"):
        img, gt = acdc / p / f"{p}_frame01.nii.gz", acdc / p / f"{p}_frame01_gt.nii.gz"
        _link(img, a / "images" / f"{p}.nii.gz")
        _link(gt, a / "labels" / f"{p}.nii.gz")
        _link(img, b / f"{p}_img.nii.gz")
        _link(gt, b / f"{p}_seg.nii.gz")
    for src in (a, b):
        path, _ = prepare_dataset(
            "nifti-pairs", src, tmp_path / ("out_" + src.name), target="left ventricle", modality="mr", label_values=[3]
        )
        d = check_datalist(path, "nifti-pairs")
        assert len(_samples(d)) == 3 and all(s["label_values"] == [3] for s in _samples(d))
    with pytest.raises(ConversionError, match="--target"):
        build_datalist("nifti-pairs", a)


def test_frames_with_masks_natural_order(shared_data, tmp_path):
    us = shared_data / "carotid_us" / "US images"
    masks = shared_data / "carotid_us" / "Expert mask images"
    names = sorted(n for n in os.listdir(us) if n.startswith("202201121806070027"))[:12]
    for seq in ("seqA", "seqB", "seqC"):
        for i, n in enumerate(names):
            _link(us / n, tmp_path / "src" / seq / f"frame{i}.png")
            _link(masks / n, tmp_path / "masks" / seq / f"frame{i}_mask.png")
    path, _ = prepare_dataset(
        "frames", tmp_path / "src", tmp_path / "out", target="common carotid artery", modality="ultrasound",
        masks=tmp_path / "masks",
    )
    d = check_datalist(path, "frames")
    s = _samples(d)
    assert len(s) == 3
    assert [Path(p).name for p in s[0]["image"]] == [f"frame{i}.png" for i in range(12)]
    assert s[0]["label_values"] == [255]
    # without masks: label null
    d, _ = build_datalist("frames", tmp_path / "src", target="common carotid artery", modality="ultrasound")
    assert all(x["label"] is None and x["label_values"] is None for x in _samples(d))


# ----------------------------------------------------------------------------- CLI
def test_cli_subprocess(shared_data, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, str(TOOL), "carotid-us", "--src", str(shared_data / "carotid_us"), "--out", str(out),
         "--seed", "1", "--split", "0.6,0.2,0.2"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "training" in r.stdout and "validation" in r.stdout and "test" in r.stdout
    d = check_datalist(out / "datalist.json", "carotid-us")
    assert d["seed"] == 1 and len(_samples(d)) == 10


def _cli():
    sys.path.insert(0, str(TOOL.parent))
    try:
        import prepare_dataset as cli
    finally:
        sys.path.remove(str(TOOL.parent))
    return cli


def test_cli_broken_input_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad"
    assert _cli().main(["busbra", "--src", str(bad), "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "nothing written" in err
    assert not (tmp_path / "out2").exists()


def test_cli_unknown_format_and_missing_options(tmp_path, capsys):
    cli = _cli()
    with pytest.raises(SystemExit) as e:
        cli.main(["no-such-format", "--src", str(tmp_path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["nifti-pairs", "--src", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "--target" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- broken inputs
def _assert_fails(fmt, src, out, match, **options):
    with pytest.raises(ConversionError, match=re.escape(str(match))):
        prepare_dataset(fmt, src, out, **options)
    assert not (out / "datalist.json").exists()


def _acdc_copy(shared_data, tmp_path, n=3) -> Path:
    root = tmp_path / "acdc"
    for p in sorted(os.listdir(shared_data / "acdc"))[:n]:
        for f in os.listdir(shared_data / "acdc" / p):
            _link(shared_data / "acdc" / p / f, root / p / f)
    return root


def test_broken_truncated_nifti_header(shared_data, tmp_path):
    root = _acdc_copy(shared_data, tmp_path)
    img = root / "patient002" / "patient002_frame01.nii.gz"
    data = img.read_bytes()
    img.unlink()
    img.write_bytes(data[:60])  # gzip stream cut inside the header
    _assert_fails("acdc", root, tmp_path / "out", img)


def test_broken_truncated_nifti_data(shared_data, tmp_path):
    root = _acdc_copy(shared_data, tmp_path)
    gt = root / "patient001" / "patient001_frame02_gt.nii.gz"
    raw = gzip.decompress(gt.read_bytes())
    gt.unlink()
    gt.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # header fine, voxels missing
    _assert_fails("acdc", root, tmp_path / "out", gt)
    # an image volume cut mid-data (header intact) is caught from the gzip trailer, without loading it
    gt.unlink()
    _link(shared_data / "acdc" / "patient001" / "patient001_frame02_gt.nii.gz", gt)
    img = root / "patient002" / "patient002_frame02.nii.gz"
    data = img.read_bytes()
    img.unlink()
    img.write_bytes(data[: len(data) * 2 // 3])
    _assert_fails("acdc", root, tmp_path / "out", img)
    # an uncompressed .nii shorter than its header says is caught from the header alone
    pairs = tmp_path / "pairs"
    _link(shared_data / "acdc" / "patient001" / "patient001_frame01.nii.gz", pairs / "x_img.nii.gz")
    (pairs / "x_seg.nii").write_bytes(raw[: len(raw) // 2])
    _assert_fails("nifti-pairs", pairs, tmp_path / "out", pairs / "x_seg.nii", target="heart", modality="mr")


def test_broken_missing_mask(shared_data, tmp_path):
    root = _acdc_copy(shared_data, tmp_path)
    (root / "patient008" / "patient008_frame01_gt.nii.gz").unlink()
    _assert_fails("acdc", root, tmp_path / "out", root / "patient008" / "patient008_frame01.nii.gz")

    car = tmp_path / "carotid"
    names = sorted(os.listdir(shared_data / "carotid_us" / "US images"))[:6]
    for n in names:
        _link(shared_data / "carotid_us" / "US images" / n, car / "US images" / n)
        _link(shared_data / "carotid_us" / "Expert mask images" / n, car / "Expert mask images" / n)
    (car / "Expert mask images" / names[3]).unlink()
    _assert_fails("carotid-us", car, tmp_path / "out", car / "US images" / names[3])

    stills = tmp_path / "stills"
    _link(shared_data / "ultrasound_stills" / "20_ultrasound_breast.png", stills / "20_ultrasound_breast.png")
    _assert_fails("ultrasound-stills", stills, tmp_path / "out", stills / "20_ultrasound_breast.png")


def _busbra_copy(shared_data, tmp_path, ids=("bus_0006-s", "bus_0007-l", "bus_0007-r", "bus_0009-l")) -> Path:
    src = shared_data / "busbra"
    root = tmp_path / "busbra"
    for i in ids:
        _link(src / "Images" / f"{i}.png", root / "Images" / f"{i}.png")
        m = "mask_" + i[4:] + ".png"
        _link(src / "Masks" / m, root / "Masks" / m)
    with open(src / "bus_data.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["ID"] in ids]
    with open(root / "bus_data.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_broken_mask_size(shared_data, tmp_path):
    root = _busbra_copy(shared_data, tmp_path)
    assert len(_samples(build_datalist("busbra", root)[0])) == 4
    mask = root / "Masks" / "mask_0007-r.png"
    im = Image.open(mask)
    small = im.resize((im.size[0] // 2, im.size[1] // 2))
    mask.unlink()
    small.save(mask)
    _assert_fails("busbra", root, tmp_path / "out", mask)


def test_broken_csv_missing_column(shared_data, tmp_path):
    root = _busbra_copy(shared_data, tmp_path)
    text = (root / "bus_data.csv").read_text().splitlines()
    header = text[0].split(",")
    k = header.index("BIRADS")
    rows = [",".join(x for j, x in enumerate(line.split(",")) if j != k) for line in text[:2]]
    (root / "bus_data.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ConversionError, match="BIRADS") as e:
        prepare_dataset("busbra", root, tmp_path / "out")
    assert str(root / "bus_data.csv") in str(e.value)
    assert not (tmp_path / "out").exists()


def test_broken_missing_folder_keeps_previous_datalist(shared_data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "datalist.json").write_text('{"old": true}')
    cvc = tmp_path / "cvc"
    _link(shared_data / "cvc_clinicdb" / "Original", cvc / "Original")
    _link(shared_data / "cvc_clinicdb" / "sequences.json", cvc / "sequences.json")
    with pytest.raises(ConversionError, match="Ground Truth"):
        prepare_dataset("cvc-clinicdb", cvc, out)
    assert json.loads((out / "datalist.json").read_text()) == {"old": True}
    assert os.listdir(out) == ["datalist.json"]
    with pytest.raises(ConversionError, match=re.escape(str(tmp_path / "nowhere"))):
        prepare_dataset("brats", tmp_path / "nowhere", out)


# ----------------------------------------------------------------------------- Decathlon layouts, Kvasir-SEG
def _label_names(folder: Path) -> dict[int, str]:
    raw = json.loads((folder / "dataset.json").read_text())["labels"]
    return {int(k): v for k, v in raw.items() if int(k) != 0}


def _present_ids(label: Path) -> set[int]:
    import nibabel as nib

    return set(np.unique(np.asanyarray(nib.load(str(label)).dataobj)).tolist()) - {0}


def _check_volumes(samples: list[dict], folder: Path, modality: str, dataset: str) -> None:
    """One sample per (volume, organ present), label_values = that organ's id (read with nibabel)."""
    from monai_ext.prompts import PromptLibrary

    names = _label_names(folder)
    lib = PromptLibrary()
    volumes = sorted((folder / "imagesTr").glob("*.nii.gz"))
    by_seq: dict[str, list[dict]] = {}
    for s in samples:
        by_seq.setdefault(s["sequence_id"], []).append(s)
    assert sorted(by_seq) == [v.name[: -len(".nii.gz")] for v in volumes]
    expected = 0
    for v in volumes:
        label = folder / "labelsTr" / v.name
        present = _present_ids(label)
        mine = by_seq[v.name[: -len(".nii.gz")]]
        assert sorted(s["label_values"][0] for s in mine) == sorted(present)
        assert all(len(s["label_values"]) == 1 for s in mine)
        assert {s["image"] for s in mine} == {str(v)} and {s["label"] for s in mine} == {str(label)}
        assert len({s["split"] for s in mine}) == 1  # splits by case
        expected += len(present)
    assert len(samples) == expected
    for s in samples:
        assert s["target"] == names[s["label_values"][0]]  # dataset.json names are library names here
        assert s["modality"] == modality and s["dataset"] == dataset and s["report"] is None
        assert s["id"] == f"{s['sequence_id']}_{s['target'].replace(' ', '_')}"
    for target in {s["target"] for s in samples}:
        entry = lib.lookup(target)
        assert entry.name == target and modality in entry.modalities, (target, entry.modalities)


def test_btcv(converted, shared_data):
    d, summary = converted["btcv"]
    samples = _samples(d)
    _check_volumes(samples, shared_data / "btcv", "ct", "btcv")
    assert len({s["sequence_id"] for s in samples}) == 16
    assert len(samples) == 207  # 15 volumes x 13 organs + btcv_12 without a gallbladder
    assert "btcv_12_gallbladder" not in {s["id"] for s in samples}
    assert len({s["target"] for s in samples}) == 13
    assert {"portal vein and splenic vein", "right adrenal gland", "inferior vena cava"} <= {s["target"] for s in samples}
    assert "13 distinct" in summary


def test_chaos_mr(converted, shared_data):
    d, summary = converted["chaos-mr"]
    samples = _samples(d)
    _check_volumes(samples, shared_data / "chaos_mr_t2", "mr", "chaos_mr_t2")
    assert len(samples) == 10 * 4 and len({s["sequence_id"] for s in samples}) == 10
    assert {s["target"]: s["label_values"] for s in samples} == {
        "liver": [1], "right kidney": [2], "left kidney": [3], "spleen": [4]
    }
    assert "left kidney (10)" in summary


def test_kvasir_seg(converted, shared_data):
    from monai_ext.io.frames import read_image_array
    from monai_ext.prompts import PromptLibrary

    d, _ = converted["kvasir-seg"]
    samples = _samples(d)
    folder = shared_data / "kvasir_seg"
    stems = sorted(p.stem for p in (folder / "images").glob("*.jpg"))
    assert len(samples) == len(stems) == 700
    assert sorted(s["sequence_id"] for s in samples) == [f"kvasir_{n}" for n in stems]  # one image, one sequence
    assert all(s["id"] == s["sequence_id"] for s in samples)
    for s in samples:
        assert Path(s["image"]).parent == folder / "images" and s["image"].endswith(".jpg")
        assert s["label"] == str(folder / "masks" / (Path(s["image"]).stem + ".png"))
        assert s["label_values"] == [255] and s["target"] == "polyp" and s["modality"] == "endoscopy"
        assert s["dataset"] == "kvasir_seg"
    for s in samples[:: len(samples) // 5]:
        mask = read_image_array(s["label"])
        assert mask.shape[0] == 1 and set(np.unique(mask).tolist()) == {0, 255}
    assert "endoscopy" in PromptLibrary().lookup("polyp").modalities
    assert [len(d[n]) for n in SPLITS] == [490, 105, 105]


def test_new_formats_deterministic_for_seed(shared_data):
    a, _ = build_datalist("chaos-mr", shared_data / "chaos_mr_t2", seed=5)
    b, _ = build_datalist("chaos-mr", shared_data / "chaos_mr_t2", seed=5)
    assert a == b
    c, _ = build_datalist("chaos-mr", shared_data / "chaos_mr_t2", seed=6)
    assert {s["sequence_id"]: s["split"] for s in _samples(a)} != {s["sequence_id"]: s["split"] for s in _samples(c)}


def test_library_target_name():
    from monai_ext.data.converters._common import library_target_name

    assert library_target_name("kidney_right", "ct") == ("right kidney", None)
    assert library_target_name("Portal and splenic vein", "mr") == ("portal vein and splenic vein", None)
    assert library_target_name("Left Kidney", "ct") == ("left kidney", None)
    name, problem = library_target_name("left kidney", "endoscopy")
    assert name == "left kidney" and "no endoscopy descriptions" in problem
    # lookup() finds "portal vein" inside the text; a converter must not rename a label that way
    name, problem = library_target_name("portal vein thrombus", "ct")
    assert name == "portal vein thrombus" and "not a prompt-library name" in problem


def _decathlon_copy(shared_data, tmp_path, folder: str, cases: list[str], name: str | None = None) -> Path:
    """Symlinked copy of some cases of a Decathlon-layout folder, with a real (editable) dataset.json."""
    src = shared_data / folder
    root = tmp_path / (name or folder)
    for c in cases:
        _link(src / "imagesTr" / f"{c}.nii.gz", root / "imagesTr" / f"{c}.nii.gz")
        _link(src / "labelsTr" / f"{c}.nii.gz", root / "labelsTr" / f"{c}.nii.gz")
    (root / "dataset.json").write_text((src / "dataset.json").read_text())
    return root


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def test_decathlon_generic_nnunet_v2_json(shared_data, tmp_path):
    src = shared_data / "chaos_mr_t2"
    root = tmp_path / "Dataset042_Abdomen"
    cases = ["chaos_01", "chaos_02", "chaos_03"]
    for c in cases:  # nnU-Net v2 names: channel suffix _0000 on images, a second channel ignored
        _link(src / "imagesTr" / f"{c}.nii.gz", root / "imagesTr" / f"{c}_0000.nii.gz")
        _link(src / "imagesTr" / f"{c}.nii.gz", root / "imagesTr" / f"{c}_0001.nii.gz")
        _link(src / "labelsTr" / f"{c}.nii.gz", root / "labelsTr" / f"{c}.nii.gz")
    labels = {"background": 0, "liver": 1, "kidney_right": 2, "Left Kidney": 3, "spleen": 4, "both kidneys": [2, 3]}
    (root / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "T2"}, "labels": labels, "file_ending": ".nii.gz", "numTraining": 3})
    )
    path, summary = prepare_dataset("decathlon", root, tmp_path / "out")
    d = check_datalist(path, "decathlon")
    samples = _samples(d)
    assert len(samples) == 3 * 5
    assert {s["target"]: s["label_values"] for s in samples} == {
        "liver": [1], "right kidney": [2], "left kidney": [3], "spleen": [4], "both kidneys": [2, 3]
    }
    assert {s["modality"] for s in samples} == {"mr"} and {s["dataset"] for s in samples} == {"dataset042_abdomen"}
    assert all(s["image"].endswith("_0000.nii.gz") for s in samples)
    assert "both kidneys" in summary and "not in the prompt library" in summary
    # the named format refuses a name the library does not know
    with pytest.raises(ConversionError, match="both kidneys") as e:
        build_datalist("chaos-mr", root)
    assert str(root / "dataset.json") in str(e.value)
    # --modality overrides dataset.json (and says so)
    d, notes = build_datalist("decathlon", root, modality="ct", dataset="abdomen")
    assert {s["modality"] for s in _samples(d)} == {"ct"} and {s["dataset"] for s in _samples(d)} == {"abdomen"}
    assert any("--modality ct" in n for n in notes)


def test_btcv_monai_tutorial_json(shared_data, tmp_path):
    """MONAI's BTCV dataset_0.json: training/validation lists pairing imgNNNN with labelNNNN, short names."""
    src = shared_data / "btcv"
    root = tmp_path / "btcv_monai"
    lists = {"training": [], "validation": []}
    for i, c in enumerate(["btcv_00", "btcv_12", "btcv_03"], start=1):
        _link(src / "imagesTr" / f"{c}.nii.gz", root / "imagesTr" / f"img{i:04d}.nii.gz")
        _link(src / "labelsTr" / f"{c}.nii.gz", root / "labelsTr" / f"label{i:04d}.nii.gz")
        lists["validation" if i == 3 else "training"].append(
            {"image": f"imagesTr/img{i:04d}.nii.gz", "label": f"labelsTr/label{i:04d}.nii.gz"}
        )
    short = ["background", "spleen", "rkid", "lkid", "gall", "eso", "liver", "sto", "aorta", "IVC", "veins",
             "pancreas", "rad", "lad"]
    (root / "dataset.json").write_text(
        json.dumps({"modality": {"0": "CT"}, "labels": {str(i): n for i, n in enumerate(short)}, **lists})
    )
    d, _ = build_datalist("btcv", root)
    samples = _samples(d)
    assert len(samples) == 13 + 12 + 13
    names = _label_names(src)
    assert all(s["target"] == names[s["label_values"][0]] for s in samples)
    assert {s["sequence_id"] for s in samples} == {"btcv_img0001", "btcv_img0002", "btcv_img0003"}
    # a listed label that does not exist
    (root / "labelsTr" / "label0002.nii.gz").unlink()
    _assert_fails("btcv", root, tmp_path / "out", root / "imagesTr" / "img0002.nii.gz")


def test_broken_missing_dataset_json_cli(shared_data, tmp_path, capsys):
    root = _decathlon_copy(shared_data, tmp_path, "btcv", ["btcv_00", "btcv_01", "btcv_02"])
    (root / "dataset.json").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "datalist.json").write_text('{"old": true}')
    assert _cli().main(["btcv", "--src", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(root / "dataset.json") in err and "nothing written" in err
    assert json.loads((out / "datalist.json").read_text()) == {"old": True}  # left untouched
    assert os.listdir(out) == ["datalist.json"]


def test_broken_decathlon_pairs(shared_data, tmp_path):
    cases = ["chaos_01", "chaos_02", "chaos_03"]
    root = _decathlon_copy(shared_data, tmp_path, "chaos_mr_t2", cases)
    assert len(_samples(build_datalist("chaos-mr", root)[0])) == 12
    # a renamed label: its image has no label, and the renamed file no image
    lab = root / "labelsTr" / "chaos_02.nii.gz"
    lab.rename(root / "labelsTr" / "chaos_2.nii.gz")
    _assert_fails("chaos-mr", root, tmp_path / "out", root / "imagesTr" / "chaos_02.nii.gz")
    (root / "labelsTr" / "chaos_2.nii.gz").rename(lab)
    (root / "imagesTr" / "chaos_03.nii.gz").unlink()
    _assert_fails("chaos-mr", root, tmp_path / "out", root / "labelsTr" / "chaos_03.nii.gz")
    # label shape != image shape (from the headers): chaos_02's label (31 slices) for chaos_01 (37)
    _link(shared_data / "chaos_mr_t2" / "imagesTr" / "chaos_03.nii.gz", root / "imagesTr" / "chaos_03.nii.gz")
    bad = root / "labelsTr" / "chaos_01.nii.gz"
    bad.unlink()
    _link(shared_data / "chaos_mr_t2" / "labelsTr" / "chaos_02.nii.gz", bad)
    with pytest.raises(ConversionError, match="label shape") as e:
        prepare_dataset("chaos-mr", root, tmp_path / "out")
    assert str(bad) in str(e.value)
    assert not (tmp_path / "out").exists()


def test_broken_decathlon_truncated(shared_data, tmp_path):
    root = _decathlon_copy(shared_data, tmp_path, "btcv", ["btcv_10", "btcv_11", "btcv_14"])
    img = root / "imagesTr" / "btcv_11.nii.gz"
    data = img.read_bytes()
    _replace(img, data[: len(data) * 2 // 3])  # header intact, voxels cut: caught from the gzip trailer
    _assert_fails("btcv", root, tmp_path / "out", img)
    _replace(img, data[:60])  # cut inside the header
    _assert_fails("btcv", root, tmp_path / "out", img)
    img.unlink()
    _link(shared_data / "btcv" / "imagesTr" / "btcv_11.nii.gz", img)
    lab = root / "labelsTr" / "btcv_14.nii.gz"
    raw = gzip.decompress(lab.read_bytes())
    _replace(lab, gzip.compress(raw[: len(raw) // 2]))
    _assert_fails("btcv", root, tmp_path / "out", lab)


def test_broken_decathlon_json(shared_data, tmp_path):
    root = _decathlon_copy(shared_data, tmp_path, "chaos_mr_t2", ["chaos_01", "chaos_02", "chaos_03"])
    meta = json.loads((root / "dataset.json").read_text())
    js = root / "dataset.json"
    # an organ id in a label that dataset.json does not name: error naming the label and the json
    del meta["labels"]["4"]
    js.write_text(json.dumps(meta))
    with pytest.raises(ConversionError, match=r"label id\(s\) \[4\] not named") as e:
        prepare_dataset("chaos-mr", root, tmp_path / "out")
    assert str(root / "labelsTr" / "chaos_01.nii.gz") in str(e.value) and str(js) in str(e.value)
    # an organ name the prompt library does not know (named formats are strict)
    meta["labels"]["4"] = "splen"
    js.write_text(json.dumps(meta))
    _assert_fails("chaos-mr", root, tmp_path / "out", js)
    # the other dataset's format: modality mismatch
    meta["labels"]["4"] = "spleen"
    js.write_text(json.dumps(meta))
    _assert_fails("btcv", root, tmp_path / "out", js)
    # not json, no labels
    js.write_text("{not json")
    _assert_fails("chaos-mr", root, tmp_path / "out", js)
    js.write_text(json.dumps({"modality": {"0": "MR"}}))
    _assert_fails("decathlon", root, tmp_path / "out", js)
    # generic format: a modality it cannot read needs --modality
    js.write_text(json.dumps({"channel_names": {"0": "noNorm"}, "labels": {"background": 0, "liver": 1}}))
    _assert_fails("decathlon", root, tmp_path / "out", js)


def _kvasir_copy(shared_data, tmp_path, n=4) -> tuple[Path, list[str]]:
    src = shared_data / "kvasir_seg"
    root = tmp_path / "kvasir"
    stems = sorted(p.stem for p in (src / "images").glob("*.jpg"))[:n]
    for s in stems:
        _link(src / "images" / f"{s}.jpg", root / "images" / f"{s}.jpg")
        _link(src / "masks" / f"{s}.png", root / "masks" / f"{s}.png")
    return root, stems


def test_broken_kvasir(shared_data, tmp_path, capsys):
    root, stems = _kvasir_copy(shared_data, tmp_path)
    assert len(_samples(build_datalist("kvasir-seg", root)[0])) == 4
    img = root / "images" / f"{stems[1]}.jpg"
    data = img.read_bytes()
    _replace(img, data[: len(data) // 2])  # truncated JPEG: the header still opens
    assert _cli().main(["kvasir-seg", "--src", str(root), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(img) in err and "nothing written" in err
    assert not (tmp_path / "out").exists()
    _replace(img, data)
    # image without mask (a renamed mask), then that mask without image
    mask = root / "masks" / f"{stems[2]}.png"
    mask.rename(root / "masks" / "renamed.png")
    _assert_fails("kvasir-seg", root, tmp_path / "out", root / "images" / f"{stems[2]}.jpg")
    (root / "masks" / "renamed.png").rename(mask)
    extra = _link(shared_data / "kvasir_seg" / "masks" / f"{stems[0]}.png", root / "masks" / "orphan.png")
    _assert_fails("kvasir-seg", root, tmp_path / "out", extra)
    extra.unlink()
    # mask size != image size; a grey-level (JPEG-like) mask; a truncated mask
    m = np.asarray(Image.open(mask))
    mask.unlink()
    Image.fromarray(m[: m.shape[0] // 2]).save(mask)
    _assert_fails("kvasir-seg", root, tmp_path / "out", mask)
    noisy = m.copy()
    noisy[m == 255] = 250
    noisy[0, 0] = 255
    Image.fromarray(noisy).save(mask)
    with pytest.raises(ConversionError, match="not a binary mask") as e:
        prepare_dataset("kvasir-seg", root, tmp_path / "out")
    assert str(mask) in str(e.value)
    Image.fromarray(m).save(mask)
    _replace(mask, mask.read_bytes()[:200])
    _assert_fails("kvasir-seg", root, tmp_path / "out", mask)
    # missing folder
    _assert_fails("kvasir-seg", tmp_path / "nowhere", tmp_path / "out", tmp_path / "nowhere")
