"""Small real samples shipped with monai_ext (see README.md beside this file for sources and licences)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent

_SAMPLES = {
    "cvc_frames": "cvc_clinicdb/frames",
    "cvc_masks": "cvc_clinicdb/masks",
    "ct_small": "totalseg_ct_small/ct.nii.gz",
    "ct_small_seg": "totalseg_ct_small/seg.nii.gz",
    "ct_small_labels": "totalseg_ct_small/labels_total.json",
    "busbra_images": "busbra/images",
    "busbra_masks": "busbra/masks",
    "busbra_csv": "busbra/bus_data.csv",
}


def sample_path(name: str) -> Path:
    """Return the path of the shipped sample ``name``.

    Args:
        name: one of ``cvc_frames``, ``cvc_masks``, ``ct_small``, ``ct_small_seg``,
            ``ct_small_labels``, ``busbra_images``, ``busbra_masks``, ``busbra_csv``.

    Raises:
        KeyError: unknown sample name (the message lists the known ones).
    """
    if name not in _SAMPLES:
        raise KeyError(f"unknown sample {name!r}; shipped samples: {sorted(_SAMPLES)}")
    return SAMPLE_DIR / _SAMPLES[name]
