"""Prompt library: coverage of every target, description quality, lookups and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from monai_ext.prompts import (
    ModalityNotDescribedError,
    PromptLibrary,
    UnknownPromptError,
    build_prompt,
    canonical_target_name,
    default_library,
    normalize_modality,
)

DESIGN_TARGETS = [
    "polyp", "common carotid artery", "breast lesion", "right ventricle", "myocardium", "left ventricle",
    "left atrium", "pubic symphysis", "fetal head", "necrosis", "oedema", "non-enhancing tumour",
    "enhancing tumour", "brain tumour",
]
# the 20 anatomical entities of Ref-MISS (TPP paper, Table 1), spelled as the paper does
REF_MISS = {
    "left atrium": "left atrium", "right ventricle": "right ventricle", "left ventricle": "left ventricle",
    "myocardium": "myocardium", "left lung": "left lung", "right lung": "right lung", "spleen": "spleen",
    "pancreas": "pancreas", "aorta": "aorta", "left kidney": "left kidney", "right kidney": "right kidney",
    "liver": "liver", "stomach": "stomach", "gallbladder": "gallbladder", "prostate": "prostate",
    "brain tumor": "brain tumour", "breast mass": "breast lesion", "liver tumor": "liver tumour",
    "kidney tumor": "kidney tumour", "polyp": "polyp",
}
REF_MISS_MODALITY = {
    "left atrium": ["mr", "ultrasound"], "left ventricle": ["mr", "ultrasound"], "myocardium": ["mr", "ultrasound"],
    "right ventricle": ["mr"], "prostate": ["ultrasound"], "brain tumor": ["mr"], "breast mass": ["mr"],
    "polyp": ["endoscopy"],
}


@pytest.fixture(scope="module")
def lib() -> PromptLibrary:
    return default_library()


@pytest.fixture(scope="module")
def ts_labels(shared_data):
    out = {}
    for name in ("labels_total.json", "labels_total_mr.json"):
        out[name] = json.loads((shared_data / "totalseg" / name).read_text())
    return out


def test_import_is_light():
    code = "import sys, monai_ext.prompts; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_metadata(lib):
    assert lib.version and lib.source
    assert 120 <= len(lib) <= 250
    assert set(lib.names) == {e.name for e in lib}


@pytest.mark.parametrize("target", DESIGN_TARGETS)
def test_design_targets_are_canonical(lib, target):
    assert lib.lookup(target).name == target


def test_totalseg_labels_covered(lib, ts_labels):
    for fname, labels in ts_labels.items():
        modality = "mr" if fname.endswith("_mr.json") else "ct"
        for raw in labels.values():
            entry = lib.lookup(raw)
            assert entry.name == canonical_target_name(raw), (raw, entry.name)
            assert raw == entry.name or raw in entry.synonyms
            assert lib.lookup(canonical_target_name(raw)) is entry
            assert modality in entry.modalities, (raw, entry.modalities)


@pytest.mark.parametrize("raw,name", [
    ("kidney_left", "left kidney"), ("adrenal_gland_right", "right adrenal gland"),
    ("lung_upper_lobe_left", "left lung upper lobe"), ("iliac_artery_left", "left iliac artery"),
    ("urinary_bladder", "urinary bladder"), ("vertebrae_L5", "vertebrae L5"), ("rib_left_1", "rib left 1"),
])
def test_rule_r(raw, name):
    assert canonical_target_name(raw) == name


def test_ref_miss_entities(lib):
    assert len(REF_MISS) == 20
    for text, name in REF_MISS.items():
        entry = lib.lookup(text)
        assert entry.name == name
        for mod in REF_MISS_MODALITY.get(text, ["ct"]):
            assert len(entry.prompts(mod)) == 3, (text, mod)


def test_every_entry_has_three_distinct_descriptions(lib):
    allowed = {"ct", "mr", "ultrasound", "endoscopy"}
    for entry in lib:
        assert entry.modalities and set(entry.modalities) <= allowed, entry.name
        for mod in entry.modalities:
            texts = entry.prompts(mod)
            assert len(texts) == 3 and all(t.strip() for t in texts), (entry.name, mod)
            assert len(set(texts)) == 3, (entry.name, mod)
            assert all(len(t.split()) <= 30 for t in texts), (entry.name, mod)


def test_json_schema_fields(lib):
    from importlib import resources

    data = json.loads(resources.files("monai_ext.prompts").joinpath("prompt_library.json").read_text())
    assert {"version", "source", "entries"} <= set(data)
    for raw in data["entries"]:
        assert {"name", "synonyms", "modalities", "descriptions"} <= set(raw)
        assert sorted(raw["modalities"]) == sorted(raw["descriptions"])
        for d in raw["descriptions"].values():
            assert set(d) == {"profile", "shape", "appearance"}


@pytest.mark.parametrize("text,name", [
    ("the spleen", "spleen"), ("Spleen.", "spleen"), ("SPLEEN", "spleen"), ("a spleen", "spleen"),
    ("kidney_left", "left kidney"), ("left kidney", "left kidney"), ("Left Kidney!", "left kidney"),
    ("kidney left", "left kidney"),
    ("LV", "left ventricle"), ("rv", "right ventricle"), ("CCA", "common carotid artery"), ("IVC", "inferior vena cava"),
    ("brain tumor", "brain tumour"), ("Brain Tumour", "brain tumour"), ("enhancing tumor", "enhancing tumour"),
    ("non-enhancing tumor", "non-enhancing tumour"), ("non enhancing tumour", "non-enhancing tumour"),
    ("edema", "oedema"), ("peritumoral edema", "oedema"), ("oesophagus", "esophagus"), ("foetal head", "fetal head"),
    ("left clavicle", "left clavicula"), ("L5 vertebra", "vertebrae L5"), ("atlas", "vertebrae C1"),
    ("left first rib", "rib left 1"), ("right 12th rib", "rib right 12"), ("intervertebral disks", "intervertebral discs"),
    ("left heart atrium", "left atrium"), ("public symphysis", "pubic symphysis"), ("breast tumor", "breast lesion"),
    # target words of the ultrasound_stills file names
    ("left+heart+atrium", "left atrium"), ("left+heart+ventricle", "left ventricle"), ("fetal+head", "fetal head"),
    ("public+symphysis", "pubic symphysis"), ("breast_tumor", "breast lesion"),
])
def test_lookup_variants(lib, text, name):
    assert lib.lookup(text).name == name


@pytest.mark.parametrize("text,name", [
    ("segment the left kidney in this CT", "left kidney"),
    ("Please outline the spleen on the T1 MRI.", "spleen"),
    ("find the polyp in the colon", "polyp"),
    ("the tumor in the liver", "liver tumour"),
    ("left common carotid artery in the neck", "left common carotid artery"),
    ("segment the left ventricle myocardium", "myocardium"),
    ("where is the enhancing tumor?", "enhancing tumour"),
])
def test_lookup_free_sentence(lib, text, name):
    assert lib.lookup(text).name == name


@pytest.mark.parametrize("text", ["", "   ", "\n\t", None])
def test_empty_prompt(lib, text):
    with pytest.raises(ValueError, match="empty prompt"):
        lib.lookup(text)


def test_unknown_prompt(lib):
    with pytest.raises(UnknownPromptError) as info:
        lib.lookup("kidney")
    assert isinstance(info.value, KeyError)
    assert "left kidney" in str(info.value) and "right kidney" in str(info.value)
    assert "left kidney" in info.value.suggestions
    with pytest.raises(KeyError, match="close matches.*spleen"):
        lib.lookup("splen")
    assert lib.get("zebra") is None
    assert "the spleen" in lib and "zebra" not in lib


def test_entry_prompts_and_fallback(lib):
    polyp = lib.lookup("polyp")
    assert polyp.prompts("Endoscopy") == polyp.prompts("colonoscopy")
    with pytest.raises(ModalityNotDescribedError, match="polyp.*ct.*endoscopy"):
        polyp.prompts("ct")
    assert polyp.prompts("ct", fallback=True) == polyp.prompts("endoscopy")
    kid = lib.lookup("left kidney")
    assert kid.prompts("ultrasound", fallback="mr") == kid.prompts("MRI")
    with pytest.raises(ValueError, match="unknown modality"):
        kid.prompts("xray")
    assert normalize_modality("US") == "ultrasound"


def test_build_prompt(lib):
    assert build_prompt("kidney_left", "ct", style="name") == "left kidney"
    text = build_prompt("the left kidney", "CT")
    assert text.startswith("left kidney. ") and all(p in text for p in lib.lookup("left kidney").prompts("ct"))
    rep = build_prompt("breast lesion", "ultrasound", report="histology: fibroadenoma; BI-RADS 3", style="name")
    assert rep == "breast lesion. histology: fibroadenoma; BI-RADS 3."
    rep2 = build_prompt("breast lesion", "ultrasound", report={"pathology": "benign", "side": None})
    assert rep2.endswith("pathology: benign.") and "side" not in rep2
    assert build_prompt("zebra stripe", "ct", style="name", strict=False) == "zebra stripe"
    with pytest.raises(UnknownPromptError):
        build_prompt("zebra stripe", "ct")
    with pytest.raises(ValueError, match="style"):
        build_prompt("spleen", "ct", style="poem")
    with pytest.raises(ModalityNotDescribedError):
        build_prompt("polyp", "mr")
    assert build_prompt("polyp", "mr", fallback=True).startswith("polyp. A polyp")


def test_user_library(tmp_path, lib):
    user = {
        "version": "0", "source": "test",
        "entries": [{
            "name": "appendix", "synonyms": ["vermiform appendix"], "modalities": ["ct"],
            "descriptions": {"ct": {"profile": "p.", "shape": "s.", "appearance": "a."}},
        }],
    }
    path = tmp_path / "lib.json"
    path.write_text(json.dumps(user))
    own = PromptLibrary(path)
    assert len(own) == 1 and own.lookup("the vermiform appendix").prompts("ct") == ["p.", "s.", "a."]
    merged = PromptLibrary(path, include_default=True)
    assert len(merged) == len(lib) + 1 and merged.lookup("spleen").name == "spleen"

    bad = dict(user, entries=[dict(user["entries"][0], descriptions={"ct": {"profile": "p", "shape": ""}})])
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="appendix.*shape"):
        PromptLibrary(path)
    dup = dict(user, entries=[user["entries"][0], dict(user["entries"][0], name="other")])
    path.write_text(json.dumps(dup))
    with pytest.raises(ValueError, match="synonym of both"):
        PromptLibrary(path)
    with pytest.raises(FileNotFoundError):
        PromptLibrary(tmp_path / "missing.json")


def test_library_file_matches_build_script(repo_root):
    script = repo_root / "tools" / "build_prompt_library.py"
    res = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_build_prompt_with_the_typed_prompt(lib):
    """``typed`` leads the text; the canonical name typed (up to case, articles, spelling, order) changes nothing."""
    descriptions = " ".join(lib.lookup("spleen").prompts("ct"))
    assert build_prompt("spleen", "ct", typed="The Spleen.") == build_prompt("spleen", "ct") == "spleen. " + descriptions
    assert build_prompt("spleen", "ct", typed="the enlarged spleen") == "the enlarged spleen. " + descriptions
    assert build_prompt("spleen", "ct", typed="lien", style="name") == "lien"
    assert build_prompt("left kidney", "ct", typed="kidney_left", style="name") == "left kidney"
    assert build_prompt("breast lesion", "ultrasound", typed="a lump?", report="BI-RADS 4", style="name") == "a lump? BI-RADS 4."
    assert build_prompt("spleen", "ct", typed="  ") == build_prompt("spleen", "ct")  # nothing typed: the name


def test_lookup_is_unchanged_by_grounding_rules(lib):
    """``lookup`` stays the lexical resolver: it never refuses; ``ground`` does."""
    assert lib.lookup("the left kidney and the spleen").name == "left kidney"
    assert lib.lookup("not the liver").name == "liver"
    assert "the left kidney and the spleen" in lib
