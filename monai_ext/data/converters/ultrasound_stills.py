"""BiomedParse-style stills: ``<stem>.png`` images + ``<stem>_<target words joined by +>.png`` masks.

A file is a mask when another file's stem followed by ``_`` starts its name (longest such stem
is its image). One sample per (image, mask); ``sequence_id`` = the image stem, so all targets of
one image share a split. Target words map to canonical names (``TARGET_NAMES``, tried as
``<words>`` then ``<site>+<words>`` where site is the image stem's last word); unknown words are
kept with ``+`` -> spaces. Modality from the stem's second word (``ultrasound``, ``CT``, ``MRI``, ...).
"""

from __future__ import annotations

from pathlib import Path

from ._common import (
    ConversionError,
    ConversionResult,
    check_same_size,
    image_files,
    make_sample,
    require_dir,
)

FORMAT = "ultrasound-stills"
DATASET = "ultrasound_stills"

TARGET_NAMES = {
    "breast+tumor": "breast lesion",
    "breast+lesion": "breast lesion",
    "left+heart+ventricle": "left ventricle",
    "left+heart+atrium": "left atrium",
    "public+symphysis": "pubic symphysis",  # sic, BiomedParse file names
    "pubic+symphysis": "pubic symphysis",
    "fetal+head": "fetal head",
}
MODALITY_WORDS = {
    "ultrasound": "ultrasound",
    "us": "ultrasound",
    "ct": "ct",
    "mri": "mr",
    "mr": "mr",
    "endoscope": "endoscopy",
    "endoscopy": "endoscopy",
}


def canonical_target(words: str, site: str | None = None) -> str:
    key = words.lower()
    if key in TARGET_NAMES:
        return TARGET_NAMES[key]
    if site and f"{site.lower()}+{key}" in TARGET_NAMES:
        return TARGET_NAMES[f"{site.lower()}+{key}"]
    return words.replace("+", " ").strip()


def _modality(stem: str, default: str) -> str:
    parts = stem.split("_")
    for word in parts[1:2] + parts:
        if word.lower() in MODALITY_WORDS:
            return MODALITY_WORDS[word.lower()]
    return default


def convert(src: Path, modality: str | None = None, **_: object) -> ConversionResult:
    src = require_dir(Path(src), "ultrasound stills folder")
    files = image_files(src)
    if not files:
        raise ConversionError(f"{src}: no image files")
    stems = {p.stem: p for p in files}
    owner: dict[str, str] = {}  # mask stem -> image stem
    for stem in stems:
        parents = [s for s in stems if s != stem and stem.startswith(s + "_")]
        if parents:
            owner[stem] = max(parents, key=len)
    images = [s for s in stems if s not in owner]
    masks_of: dict[str, list[str]] = {s: [] for s in images}
    for m, img in owner.items():
        if img in owner:  # the "image" is itself a mask: resolve to the real image
            while img in owner:
                img = owner[img]
        masks_of[img].append(m)
    samples = []
    for img_stem in sorted(images):
        img = stems[img_stem]
        if not masks_of[img_stem]:
            raise ConversionError(f"{img}: image without mask (expected {src / (img_stem + '_<target>.png')})")
        site = img_stem.split("_")[-1]
        for m in sorted(masks_of[img_stem]):
            mask = stems[m]
            check_same_size(img, mask)
            words = m[len(img_stem) + 1 :]
            target = canonical_target(words, site)
            samples.append(
                make_sample(
                    id=f"stills_{img_stem}_{words.replace('+', '_').lower()}",
                    image=img,
                    label=mask,
                    label_values=[255],
                    target=target,
                    modality=_modality(img_stem, modality or "ultrasound"),
                    dataset=DATASET,
                    sequence_id=f"stills_{img_stem}",
                )
            )
    return ConversionResult(samples, [])
