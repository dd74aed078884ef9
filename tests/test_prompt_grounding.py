"""Typed prompts reach the model: grounding in the prompt library, refusals, the model's text and the similarity."""

from __future__ import annotations

import pytest
from monai.transforms import Compose

from monai_ext.io import LoadSequenced
from monai_ext.prompts import (
    CompoundPromptError,
    Grounding,
    NegatedPromptError,
    UnknownPromptError,
    build_prompt,
    default_library,
    names_canonically,
    prompt_lead,
)
from monai_ext.transforms import BuildPromptd, LookupTargetd


@pytest.fixture(scope="module")
def lib():
    return default_library()


def _model_text(prompt: str, modality: str, report=None, style: str = "description") -> dict:
    """LookupTargetd then BuildPromptd, as the bundles' preprocessing runs them."""
    data = LookupTargetd(keys="prompt")({"prompt": prompt, "modality": modality, "report": report})
    return BuildPromptd(keys="target", style=style)(data)


# -- the three examples ------------------------------------------------------------------
def test_a_typed_sentence_is_grounded_and_leads_the_model_text(lib):
    typed = "the dark round lesion in the breast"
    grounding = lib.ground(typed)
    assert isinstance(grounding, Grounding)
    assert grounding.name == "breast lesion" and grounding.entry is lib.lookup("breast lesion")
    assert grounding.matched == "lesion in breast" and grounding.similarity == 0.75
    data = _model_text(typed, "ultrasound")
    assert data["target"] == "breast lesion" and data["typed_prompt"] == typed and data["target_similarity"] == 0.75
    descriptions = " ".join(lib.lookup("breast lesion").prompts("ultrasound"))
    assert data["prompt_text"] == f"{typed}. {descriptions}"
    assert data["prompt_text"].startswith(typed + ". ")
    assert "the dark round lesion in the breast" == _model_text(typed, "ultrasound", style="name")["prompt_text"]


def test_two_targets_in_one_prompt_are_refused(lib):
    with pytest.raises(CompoundPromptError) as info:
        lib.ground("the left kidney and the spleen")
    assert isinstance(info.value, ValueError)
    assert str(info.value) == "one target per prompt: 'the left kidney and the spleen' names left kidney and spleen"
    assert info.value.targets == ["left kidney", "spleen"]


def test_a_negated_prompt_is_refused(lib):
    with pytest.raises(NegatedPromptError) as info:
        lib.ground("not the liver")
    assert isinstance(info.value, ValueError)
    assert "one target per prompt" in str(info.value) and "'not the liver'" in str(info.value) and "'not'" in str(info.value)
    assert "\n" not in str(info.value)


def test_refusals_come_before_the_input_is_read(tmp_path):
    missing = str(tmp_path / "no_such_input.nii.gz")
    pipeline = Compose([LookupTargetd(keys="prompt"), LoadSequenced(keys="image")])
    for prompt, error in [("the left kidney and the spleen", CompoundPromptError), ("not the liver", NegatedPromptError),
                          ("zebra", UnknownPromptError)]:
        with pytest.raises(Exception) as info:
            pipeline({"prompt": prompt, "image": missing})
        cause = info.value
        while not isinstance(cause, error) and cause.__cause__ is not None:  # MONAI wraps a transform's error
            cause = cause.__cause__
        assert isinstance(cause, error), (prompt, info.value)


# -- the refusal rules -----------------------------------------------------------------------------
@pytest.mark.parametrize("text,targets", [
    ("liver, spleen", ["liver", "spleen"]),
    ("liver+spleen", ["liver", "spleen"]),
    ("the liver or the spleen", ["liver", "spleen"]),
    ("left kidney as well as the spleen", ["left kidney", "spleen"]),
    ("RV and LV", ["right ventricle", "left ventricle"]),
    ("the liver; the spleen; the pancreas", ["liver", "spleen", "pancreas"]),
    ("segment the liver and then the spleen", ["liver", "spleen"]),
    ("lesion in the liver and the spleen", ["liver tumour", "spleen"]),
    ("the liver with the spleen", ["liver", "spleen"]),
    ("brain tumour with oedema", ["brain tumour", "oedema"]),
])
def test_compound_prompts(lib, text, targets):
    with pytest.raises(CompoundPromptError) as info:
        lib.ground(text)
    assert info.value.targets == targets


@pytest.mark.parametrize("text,word", [
    ("no liver", "no"), ("without the spleen", "without"), ("everything except the spleen", "except"),
    ("don't segment the liver", "don't"), ("the liver but not the spleen", "not"),
    ("anything other than the liver", "other than"), ("excluding the liver", "excluding"), ("not a zebra", "not"),
])
def test_negated_prompts(lib, text, word):
    with pytest.raises(NegatedPromptError) as info:
        lib.ground(text)
    assert info.value.negation == word


@pytest.mark.parametrize("text,name", [
    ("portal vein and splenic vein", "portal vein and splenic vein"),  # one library target whose name holds "and"
    ("the portal vein and the splenic vein", "portal vein and splenic vein"),
    ("jejunum and ileum", "small bowel"),
    ("the left ventricle", "left ventricle"),
    ("find the polyp in the colon", "polyp"),  # a second library name after a place word says where
    ("the polyp, which is in the colon", "polyp"),
    ("the polyp in this patient's colon", "polyp"),
    ("segment the left ventricle myocardium", "myocardium"),
    ("LV and the left ventricle", "left ventricle"),  # one target, twice
    ("non-enhancing tumour", "non-enhancing tumour"),
    ("left+heart+atrium", "left atrium"),
    ("the Breast Nodule near the nipple", "breast lesion"),
])
def test_single_targets_are_not_refused(lib, text, name):
    assert lib.ground(text).name == name


def test_unknown_prompts_are_refused_with_the_closest_targets(lib):
    with pytest.raises(UnknownPromptError) as info:
        lib.ground("kidney")
    assert {"left kidney", "right kidney"} <= set(info.value.suggestions)
    with pytest.raises(ValueError, match="empty prompt"):
        lib.ground("   ")


def test_every_library_name_and_synonym_is_accepted(lib):
    """No canonical name or synonym is refused, alone, with an article, in a sentence or in capitals."""
    refused, misgrounded = [], []
    for entry in lib:
        for key in (entry.name, *entry.synonyms):
            for text in (key, f"the {key}", f"segment the {key} in this image", key.upper()):
                try:
                    grounding = lib.ground(text)
                except (KeyError, ValueError) as e:
                    refused.append((text, str(e)))
                    continue
                if grounding.entry is not entry:
                    misgrounded.append((text, entry.name, grounding.name))
            assert lib.ground(key).similarity == 1.0, key
    assert not refused and not misgrounded, (refused[:5], misgrounded[:5])


# -- the model's text ------------------------------------------------------------------------------
def test_canonical_names_give_todays_exact_text(lib):
    """The evaluation datalists type canonical names: their text (hence the validation Dice) is unchanged."""
    for entry in lib:
        for modality in entry.modalities:
            before = build_prompt(entry.name, modality)
            assert build_prompt(entry.name, modality, typed=entry.name) == before
            assert _model_text(entry.name, modality)["prompt_text"] == before, entry.name
        assert _model_text(entry.name, entry.modalities[0], style="name")["prompt_text"] == build_prompt(entry.name, style="name")
    report = {"histology": "fibroadenoma", "BI-RADS": 3}
    assert _model_text("breast lesion", "ultrasound", report=report)["prompt_text"] == build_prompt("breast lesion", "ultrasound", report=report)


@pytest.mark.parametrize("typed,name", [
    ("Polyp", "polyp"), ("the polyp", "polyp"), ("Polyp.", "polyp"), ("  the   POLYP ", "polyp"),
    ("kidney_left", "left kidney"), ("Kidney left", "left kidney"), ("brain tumor", "brain tumour"),
])
def test_the_canonical_name_up_to_case_articles_spelling_and_order_gives_the_canonical_text(lib, typed, name):
    entry = lib.lookup(name)
    assert names_canonically(typed, entry) and prompt_lead(typed, entry) == name
    modality = entry.modalities[0]
    assert _model_text(typed, modality)["prompt_text"] == build_prompt(name, modality)


def test_a_typed_synonym_leads_the_text(lib):
    """Rule: anything but the canonical name (a synonym, an abbreviation, a sentence) reaches the model as typed."""
    lv = lib.lookup("left ventricle")
    data = _model_text("LV", "mr")
    assert data["target"] == "left ventricle" and data["target_similarity"] == 1.0
    assert data["prompt_text"] == "LV. " + " ".join(lv.prompts("mr"))
    assert _model_text("LV", "mr", style="name")["prompt_text"] == "LV"
    assert _model_text("breast tumor", "ultrasound")["prompt_text"].startswith("breast tumor. A breast lesion")
    # a question keeps its own mark; a report still follows
    asked = _model_text("Where is the polyp?", "endoscopy", report="sessile, 5 mm")
    assert asked["prompt_text"] == "Where is the polyp? " + " ".join(lib.lookup("polyp").prompts("endoscopy")) + " sessile, 5 mm."
    assert asked["typed_prompt"] == "Where is the polyp?"


def test_without_a_typed_prompt_the_name_leads(lib):
    data = BuildPromptd(keys="target")({"target": "spleen", "modality": "ct"})
    assert data["prompt_text"] == build_prompt("spleen", "ct")
    data = BuildPromptd(keys="target", typed_key=None)({"target": "spleen", "modality": "ct", "typed_prompt": "the big spleen"})
    assert data["prompt_text"] == build_prompt("spleen", "ct")


# -- similarity --------------------------------------------------------------------------------------
def test_similarity_orders_typed_texts(lib):
    def sim(text):
        return lib.ground(text).similarity

    assert sim("left kidney") == sim("The Left Kidney.") == sim("kidney_left") == 1.0
    assert sim("LV") == 1.0  # a synonym is a name of the target
    assert 1.0 > sim("left kidney in this CT") > sim("please segment the left kidney in this CT scan") > 0.0
    assert sim("the dark round lesion in the breast") < sim("lesion in the breast") == 1.0
    assert sim("segment the left kidney in this CT") == 0.5  # 2 * 2 common words / (6 typed + 2 of "left kidney")
    g = lib.ground("  segment   the left kidney ")
    assert g.text == "segment the left kidney" and g.matched == "left kidney" and not g.canonical
    assert 0.0 <= g.similarity <= 1.0


def test_lookup_target_keys_are_configurable(lib):
    data = LookupTargetd(keys="prompt", typed_key=None, similarity_key="sim", matched_key="matched")({"prompt": "find the LV"})
    assert data == {"prompt": "find the LV", "target": "left ventricle", "sim": 0.6667, "matched": "lv"}
