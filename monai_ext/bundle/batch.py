"""Batch inference: many cases through a bundle's ``inference.json``, resumable, shardable across processes.

A batch is a datalist (``tools/prepare_dataset.py``'s ``datalist.json``, or a JSON list of
``{"image": ..., "prompt": ...}``) or a folder of studies (one case per file or sub-folder).
:func:`read_cases` turns it into the rows ``inference.json``'s ``dataset`` reads, each with an ``id``
naming its output sub-folder. A case is complete when its ``<id>/<stem>_prediction.json`` exists:
``SavePredictiond`` writes it last, after the masks, each file atomically, so a killed run leaves no
case that looks complete and is not; :func:`pending_cases` drops the complete ones so that a
restarted run does only the rest. ``multi_gpu_inference.json`` shards the pending cases across
``torchrun`` processes with MONAI's ``DistributedSampler`` (``even_divisible=False``: every case
once), and :func:`write_batch_summary` writes one ``summary.json`` from the cases' own summaries.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["SUMMARY_FILE", "case_summary_path", "check_cases_per_process", "pending_cases", "read_cases", "write_batch_summary"]

SUMMARY_FILE = "summary.json"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


def _case_id(name: str) -> str:
    """A folder name for a case: letters, digits, ``.``, ``_``, ``-`` (no separators, no ``..``)."""
    safe = _UNSAFE_ID.sub("_", name).strip("._") or "case"
    return safe


def read_cases(
    source: str | os.PathLike,
    split: str | Sequence[str] | None = None,
    prompt: str | None = None,
    report: str | None = None,
    modality: str | None = None,
) -> list[dict[str, Any]]:
    """The cases of a batch, as rows for ``inference.json``'s ``dataset``.

    Args:
        source: a datalist JSON (``tools/prepare_dataset.py``'s, with splits, or a list of samples with
            ``image``) or a folder of studies (each file or sub-folder one case, in name order; hidden
            entries skipped).
        split: the datalist split(s) to take (None: all).
        prompt: the prompt for every case; None takes each sample's ``prompt``, else its ``target``.
        report: report text for every case (None: each sample's ``report``).
        modality: the modality for every case (None: each sample's ``modality``, else detected).

    Returns:
        ``[{"id", "image", "input", "prompt", "report", "modality"}, ...]`` with unique, path-safe ids.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: an empty batch, a sample without an image or without a prompt, a malformed datalist.
    """
    from monai_ext.data import read_datalist
    from monai_ext.io.meta import path_stem

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{source}: datalist or studies folder not found")
    if path.is_dir():
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        samples = [{"id": path_stem(p), "image": str(p)} for p in entries]
    else:
        try:
            with open(path) as f:
                raw = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}: not a JSON datalist ({e})") from None
        if isinstance(raw, list):
            samples = raw
        elif isinstance(raw, Mapping):
            samples = read_datalist(path, split)
        else:
            raise ValueError(f"{source}: a datalist is a JSON object with splits or a list of samples")
    if not samples:
        raise ValueError(f"{source}: no case to segment" + (f" in split {split}" if split else ""))
    cases, seen = [], set()
    for n, sample in enumerate(samples):
        if not isinstance(sample, Mapping) or not sample.get("image"):
            raise ValueError(f"{source}: sample {n} has no 'image'")
        text = prompt if prompt is not None else sample.get("prompt") or sample.get("target")
        if not text:
            raise ValueError(f"{source}: sample {n} ({sample.get('id', sample['image'])}) has no prompt or target; pass --prompt")
        image = sample["image"]
        case_id = _case_id(str(sample.get("id") or path_stem(image if isinstance(image, str) else image[0])))
        base, k = case_id, 1
        while case_id in seen:  # two studies with one name: keep both
            k += 1
            case_id = f"{base}_{k}"
        seen.add(case_id)
        cases.append(
            {
                "id": case_id,
                "image": image,
                "input": image,
                "prompt": text,
                "report": report if report is not None else sample.get("report"),
                "modality": modality if modality is not None else sample.get("modality"),
            }
        )
    return cases


def case_summary_path(output_dir: str | os.PathLike, case_id: str) -> Path | None:
    """The case's ``*_prediction.json`` in ``output_dir/<id>`` (written last: the case is complete), or None."""
    found = sorted((Path(output_dir) / case_id).glob("*_prediction.json"))
    return found[0] if found else None


def pending_cases(cases: Sequence[Mapping[str, Any]], output_dir: str | os.PathLike, skip_done: bool = True) -> list[dict[str, Any]]:
    """The cases whose output is not complete yet (all of them when ``skip_done`` is False).

    Under ``torch.distributed`` the first process decides and the others take its list: a process
    that starts late must not see a case another has just written as done, or the shards would
    disagree and a case be lost.
    """
    import torch.distributed as dist

    if not skip_done:
        return [dict(c) for c in cases]
    pending = None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
        pending = [str(c["id"]) for c in cases if case_summary_path(output_dir, str(c["id"])) is None]
    if dist.is_available() and dist.is_initialized():
        shared = [pending]
        dist.broadcast_object_list(shared, src=0)
        pending = shared[0]
    keep = set(pending)
    return [dict(c) for c in cases if str(c["id"]) in keep]


def check_cases_per_process(n_cases: int) -> int:
    """Refuse a distributed evaluation with fewer cases than processes; return ``n_cases``.

    A process whose shard is empty does not run its evaluator (MONAI skips an empty run), so it never
    reaches the metrics gathering the others wait in: the run would hang instead of failing.

    Raises:
        ValueError: under ``torch.distributed``, fewer cases than processes.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and n_cases < dist.get_world_size():
        raise ValueError(
            f"{n_cases} case(s) for {dist.get_world_size()} processes: each process needs at least one case to "
            "evaluate; start fewer processes"
        )
    return n_cases


def write_batch_summary(
    cases: Sequence[Mapping[str, Any]], output_dir: str | os.PathLike, meta: Mapping[str, Any] | None = None, distributed: bool | None = None
) -> Path | None:
    """Write ``output_dir/summary.json`` for the batch from each case's own summary; return its path.

    Under ``torch.distributed`` every process waits for the others (a barrier) and the first writes.

    Args:
        cases: the whole batch (:func:`read_cases`), done before this run or in it.
        output_dir: the batch's output folder.
        meta: the bundle's metadata (its ``name`` and ``version`` are recorded).
        distributed: synchronise across processes; None: when a process group is initialised.

    Returns:
        the summary's path (None on the other processes).
    """
    import torch.distributed as dist

    from monai_ext.atomic import atomic_write_json

    if distributed is None:
        distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.barrier()
        if dist.get_rank() != 0:
            return None
    rows, missing = [], []
    for case in cases:
        path = case_summary_path(output_dir, str(case["id"]))
        if path is None:
            missing.append(str(case["id"]))
            continue
        with open(path) as f:
            summary = json.load(f)
        rows.append(
            {
                "id": case["id"],
                "input": summary.get("input"),
                "prompt": summary.get("typed_prompt", case.get("prompt")),
                "target": summary.get("target"),
                "target_present": summary.get("target_present"),
                "n_frames": summary.get("n_frames"),
                "frames_with_target": len(summary.get("frames_with_target", [])),
                "prediction": str(path),
            }
        )
    meta = meta or {}
    out = Path(output_dir) / SUMMARY_FILE
    atomic_write_json(
        out,
        {
            "bundle": meta.get("name"),
            "version": meta.get("version"),
            "cases": len(cases),
            "complete": len(rows),
            "missing": missing,
            "results": rows,
        },
        indent=1,
    )
    return out
