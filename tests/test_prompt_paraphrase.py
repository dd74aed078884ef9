"""Sentence templates for training draws and the held-out paraphrases that test free text."""

from __future__ import annotations

import pytest

from monai_ext.data.prompt_sampling import ReferringPrompts
from monai_ext.prompts import (
    HELD_OUT_PARAPHRASES,
    MODALITIES,
    TRAINING_TEMPLATES,
    build_prompt,
    default_library,
    fill_template,
    template_leads,
)


def test_fill_template_uses_the_modality_words():
    assert fill_template("the {x} on this {modality} {view}", "spleen", "ct") == "the spleen on this CT scan"
    assert fill_template("mark the {x} in the {view}", "polyp", "endoscopy") == "mark the polyp in the frame"
    assert fill_template("the {x} on this {modality} {view}", "lesion", None) == "the lesion on this image"


def test_held_out_paraphrases_are_never_a_training_lead():
    library = default_library()
    assert len(HELD_OUT_PARAPHRASES) >= 5 and not set(HELD_OUT_PARAPHRASES) & set(TRAINING_TEMPLATES)
    for entry in library.entries:
        for modality in entry.modalities:
            names = [entry.name, *entry.synonyms]
            held_out = {fill_template(p, n, modality) for p in HELD_OUT_PARAPHRASES for n in names}
            assert not held_out & set(template_leads(entry.name, modality, library=library)), entry.name


@pytest.mark.parametrize("target, modality", [("spleen", "ct"), ("left ventricle", "mr"), ("polyp", "endoscopy"), ("breast lesion", "ultrasound")])
def test_held_out_paraphrases_ground_to_their_target(target, modality):
    library = default_library()
    for paraphrase in HELD_OUT_PARAPHRASES:
        text = fill_template(paraphrase, target, modality)
        assert library.ground(text).entry.name == target, text


def test_templates_style_leads_the_description_with_each_sentence():
    prompts = ReferringPrompts(styles=["description", "templates"])
    index = prompts.add_target("btcv", "spleen", "ct", report=None)
    texts = [prompts.texts[i] for i in prompts._sets[index]]
    description = build_prompt("spleen", "ct")
    assert texts[0] == description  # validation takes the first text: the canonical one
    leads = template_leads("spleen", "ct")
    assert len(texts) == 1 + len(leads) and "where is the spleen?" in leads
    tail = description[len("spleen.") :]
    for text, lead in zip(texts[1:], leads):
        assert text.startswith(lead) and text.endswith(tail)  # the sentence, then the same descriptions
    with_report = prompts.add_target("busbra", "breast lesion", "ultrasound", report="BI-RADS 4")
    assert all(prompts.texts[i].endswith("BI-RADS 4.") for i in prompts._sets[with_report])  # the case's report too


def test_templates_cover_every_modality_of_the_library():
    library = default_library()
    for modality in MODALITIES:
        entry = next(e for e in library.entries if modality in e.modalities)
        leads = template_leads(entry.name, modality)
        assert len(leads) >= len(TRAINING_TEMPLATES) and all("{" not in lead for lead in leads)
