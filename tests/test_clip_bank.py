"""ReferringClipBank on tiny synthetic NIfTI volumes: sources, clips, batches, feature cache, determinism."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.engines import ReferringClipBank, encoder_fingerprint
from monai_ext.prompts.encoder import TextFeatures

SIZE = (32, 32)
FRAMES = 6
WORDS = {"liver": 1.0, "spleen": 2.0, "left": 3.0, "kidney": 4.0}


class WordEncoder:
    """Stand-in text encoder: one 4-D token per word (value = word id), so padding is visible."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        length = max(len(t.split()) for t in texts)
        tokens = torch.zeros(len(texts), length, 4)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, text in enumerate(texts):
            for j, word in enumerate(text.split()):
                tokens[i, j] = WORDS[word]
                mask[i, j] = True
        return TextFeatures(tokens=tokens, mask=mask, pooled=tokens.mean(1))


class CountingEncoder:
    """Feature encoder ``(B, 3, 32, 32) -> (B, 12, 8, 8)`` that counts its calls and frames."""

    def __init__(self) -> None:
        self.calls = 0
        self.frames = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.frames += x.shape[0]
        return torch.nn.functional.avg_pool2d(x, 4).repeat(1, 4, 1, 1)


def _volume(tmp: Path, name: str, regions: dict[int, tuple[int, ...]]) -> tuple[str, str]:
    """CT volume (32, 32, 6) in HU with a bright structure, and its label (value -> slices)."""
    image = np.full((32, 32, FRAMES), -50.0, np.float32)
    label = np.zeros((32, 32, FRAMES), np.uint8)
    for value, slices in regions.items():
        for z in slices:
            label[6 + 4 * value : 18 + 4 * value, 8:20, z] = value
    image[label > 0] = 200.0  # inside the abdomen window (40, 400): bright
    nib.save(nib.Nifti1Image(image, np.eye(4)), tmp / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(label, np.eye(4)), tmp / f"{name}_seg.nii.gz")
    return str(tmp / f"{name}.nii.gz"), str(tmp / f"{name}_seg.nii.gz")


def _sample(sample_id, image, label, values, target, dataset):
    return {"id": sample_id, "image": image, "label": label, "label_values": values, "target": target,
            "modality": "ct", "dataset": dataset, "report": None}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clip_bank_data")
    a1, a1_seg = _volume(tmp, "a1", {1: (2, 3, 4)})
    a2, a2_seg = _volume(tmp, "a2", {1: (5,)})  # the target only in the last slice
    b1, b1_seg = _volume(tmp, "b1", {2: (1, 2)})
    return [
        _sample("a1_liver", a1, a1_seg, [1], "liver", "ds_a"),
        _sample("a2_liver", a2, a2_seg, [1], "liver", "ds_a"),
        _sample("b1_spleen", b1, b1_seg, [2], "spleen", "ds_b"),
        _sample("b1_left_kidney", b1, b1_seg, [3], "left kidney", "ds_b"),  # no value 3: absent throughout
    ]


def _bank(samples, **kwargs) -> ReferringClipBank:
    kwargs.setdefault("clip_length", 3)
    bank = ReferringClipBank(samples, SIZE, prompt_style="name", foreign_negatives=1.0, seed=0, **kwargs)
    bank.encode_prompts(WordEncoder())
    return bank


def _presence(label: torch.Tensor) -> list[bool]:
    return label.flatten(1).any(1).tolist()


def test_sources_masks_and_frame_clips(samples):
    bank = _bank(samples)
    assert len(bank.sequences) == 3  # b1 is read once for its two samples
    assert all(s.dtype == torch.uint8 and s.shape == (FRAMES, 3, *SIZE) for s in bank.sequences)
    kinds = [s.kind for s in bank.sources]
    assert kinds.count("positive") == 3 and kinds.count("absent") == 1 and kinds.count("foreign") == 3
    by_id = {(s.sample_id, s.kind): i for i, s in enumerate(bank.sources)}
    assert bank.sources[by_id[("b1_left_kidney", "absent")]].masks == -1
    # a foreign source names a target of another dataset on the sequence
    for s in bank.sources:
        if s.kind == "foreign":
            other = {"ds_a": {"spleen", "left kidney"}, "ds_b": {"liver"}}[s.dataset]
            assert bank.prompts[s.prompt] in other, (s, bank.prompts[s.prompt])
    assert sorted(bank.prompts) == ["left kidney", "liver", "spleen"]

    everything = list(range(FRAMES))
    expected = {"a1_liver": [2, 3, 4], "a2_liver": [5], "b1_spleen": [1, 2]}
    for sample_id, slices in expected.items():
        item = bank.clip(by_id[(sample_id, "positive")], everything)
        assert item["image"].shape == (FRAMES, 3, *SIZE) and item["image"].dtype == torch.float32
        assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
        assert item["label"].shape == (FRAMES, 1, *SIZE) and item["positive"] is True
        assert _presence(item["label"]) == [z in slices for z in everything], sample_id
        # the label sits on the bright structure of the same frames (image and label aligned)
        inside = item["image"][:, :1][item["label"] > 0]
        outside = item["image"][:, :1][item["label"] == 0]
        assert float(inside.min()) > float(outside.max()), sample_id
    for index, source in enumerate(bank.sources):
        if source.kind != "positive":
            item = bank.clip(index, everything)
            assert not item["label"].any() and item["positive"] is False
    # padded text: "liver" is one token, "left kidney" two
    liver = bank.clip(by_id[("a1_liver", "positive")], [0, 1, 2])
    kidney = bank.clip(by_id[("b1_left_kidney", "absent")], [0, 1, 2])
    assert liver["text_tokens"].shape == kidney["text_tokens"].shape == (2, 4)
    assert liver["text_mask"].tolist() == [True, False] and kidney["text_mask"].tolist() == [True, True]
    assert liver["text_tokens"][0].tolist() == [1.0] * 4 and kidney["text_tokens"][:, 0].tolist() == [3.0, 4.0]


def test_clips_need_encoded_prompts(samples):
    bank = ReferringClipBank(samples[:1], SIZE, prompt_style="name")
    with pytest.raises(RuntimeError, match="encode_prompts"):
        bank.clip(0, [0, 1])


def test_batches_draw_positive_clips_holding_the_target(samples):
    bank = _bank(samples)
    drawn: list[tuple[str, str, list[bool]]] = []
    clip = bank.clip

    def spy(source_index, frames, prompt=None):
        item = clip(source_index, frames, prompt)
        source = bank.sources[source_index]
        drawn.append((source.kind, source.sample_id, _presence(item["label"])))
        return item

    bank.clip = spy  # type: ignore[method-assign]
    generator = torch.Generator().manual_seed(0)
    for batch in bank.batches(4, 30, generator):
        assert batch["image"].shape == (4, 3, 3, *SIZE) and batch["label"].shape == (4, 3, 1, *SIZE)
        assert batch["text_tokens"].shape == (4, 2, 4) and batch["text_mask"].shape == (4, 2)
        assert batch["positive"].tolist() == batch["label"].flatten(1).any(1).tolist()
    assert len(drawn) == 120
    assert {kind for kind, _, _ in drawn} == {"positive", "absent", "foreign"}
    positives = [(sid, presence) for kind, sid, presence in drawn if kind == "positive"]
    assert all(any(presence) for _, presence in positives), positives
    # a2's target is only in its last frame: every clip of it ends there (3 of 4 starts would miss it)
    a2 = [presence for sid, presence in positives if sid == "a2_liver"]
    assert len(a2) >= 5 and all(p == [False, False, True] for p in a2)
    assert all(not any(presence) for kind, _, presence in drawn if kind != "positive")
    # every dataset gets half the weight
    weights = bank.sampling_weights()
    assert float(weights.sum()) == pytest.approx(1.0)
    share_a = float(sum(w for w, s in zip(weights, bank.sources) if s.dataset == "ds_a"))
    assert share_a == pytest.approx(0.5)


def _spy_on_clips(bank: ReferringClipBank) -> list[tuple[int, str]]:
    """Record (source index, prompt text) of every clip a batch reads."""
    drawn: list[tuple[int, str]] = []
    clip = bank.clip

    def spy(source_index, frames, prompt=None):
        item = clip(source_index, frames, prompt)
        drawn.append((source_index, bank.prompts[bank.sources[source_index].prompt if prompt is None else prompt]))
        return item

    bank.clip = spy  # type: ignore[method-assign]
    return drawn


def test_batches_resample_foreign_prompts(samples):
    # a1 is ds_a's only sequence, so ds_a has one foreign source; ds_b's targets are spleen and left kidney
    subset = [samples[0], samples[2], samples[3]]
    fixed = _bank(subset)
    bank = _bank(subset, resample_foreign_prompts=True)
    assert bank.sources == fixed.sources  # only training draws differ
    assert [(i, f.tolist()) for i, f in bank.val_clips] == [(i, f.tolist()) for i, f in fixed.val_clips]
    foreign = next(i for i, s in enumerate(bank.sources) if s.kind == "foreign" and s.dataset == "ds_a")
    own_prompt = bank.prompts[bank.sources[foreign].prompt]
    assert own_prompt in {"spleen", "left kidney"}
    # one candidate list per other dataset, never the sequence's own targets
    sampler = bank.foreign_prompt_sampler
    assert [{bank.prompts[i] for i in group} for group in sampler.prompts_by_dataset["ds_a"]] == [{"spleen", "left kidney"}]
    assert [{bank.prompts[i] for i in group} for group in sampler.prompts_by_dataset["ds_b"]] == [{"liver"}]

    seen = {}
    for name, candidate in (("fixed", fixed), ("resampled", bank)):
        drawn = _spy_on_clips(candidate)
        for batch in candidate.batches(4, 20, torch.Generator().manual_seed(0)):
            assert batch["text_tokens"].shape == (4, 2, 4)
        seen[name] = {text for index, text in drawn if index == foreign}
        assert seen[name], name
    assert seen["fixed"] == {own_prompt}  # the build-time prompt in every draw
    assert seen["resampled"] == {"spleen", "left kidney"}  # the sequence meets every wrong target
    # the clip carries the drawn prompt's tokens, and its masks stay empty
    other = next(i for i in sampler.prompts_by_dataset["ds_a"][0] if i != bank.sources[foreign].prompt)
    item = bank.clip(foreign, [0, 1, 2], other)
    assert torch.equal(item["text_tokens"], bank.text_features[0][other]) and not item["label"].any()
    # positive and absent sources keep their prompt and, like a fixed bank, leave the generator untouched
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    for index, source in enumerate(bank.sources):
        if source.kind != "foreign":
            assert bank.draw_prompt(index, generator) == source.prompt
    assert fixed.draw_prompt(foreign, generator) == fixed.sources[foreign].prompt
    assert torch.equal(generator.get_state(), state)


def test_feature_clips_and_disk_cache(samples, tmp_path):
    cache = tmp_path / "cache"
    encoder = CountingEncoder()
    bank = _bank(samples, feature_encoder=encoder, feature_tag="v1", cache_dir=cache, encode_batch_size=4)
    assert encoder.frames == 3 * FRAMES and encoder.calls == 3 * 2  # 6 frames per image in batches of 4
    files = sorted(cache.glob("*.pt"))
    assert len(files) == 3
    stamps = {f: f.stat().st_mtime_ns for f in files}
    assert all(s.dtype == torch.float16 and s.shape == (FRAMES, 12, 8, 8) for s in bank.sequences)
    item = bank.clip(0, [1, 2, 3])
    assert item["image"].shape == (3, 12, 8, 8) and item["image"].dtype == torch.float32
    assert item["label"].shape == (3, 1, *SIZE)
    # the features are those of the same frames
    frames = _bank(samples)
    expected = encoder(frames.clip(0, [1, 2, 3])["image"])
    torch.testing.assert_close(item["image"], expected, atol=1e-2, rtol=0)

    # same arguments: read back from disk, the encoder is not called, nothing rewritten
    again = CountingEncoder()
    reused = _bank(samples, feature_encoder=again, feature_tag="v1", cache_dir=cache, encode_batch_size=4)
    assert again.calls == 0
    assert sorted(cache.glob("*.pt")) == files and {f: f.stat().st_mtime_ns for f in files} == stamps
    for a, b in zip(bank.sequences, reused.sequences):
        assert torch.equal(a, b)
    # another encoder tag (e.g. other weights): recomputed and cached beside the first
    other = CountingEncoder()
    _bank(samples, feature_encoder=other, feature_tag="v2", cache_dir=cache)
    assert other.frames == 3 * FRAMES
    assert len(list(cache.glob("*.pt"))) == 6
    # another frame size is another key too
    resized = CountingEncoder()
    ReferringClipBank(samples, (16, 16), prompt_style="name", feature_encoder=resized, feature_tag="v1", cache_dir=cache)
    assert resized.frames == 3 * FRAMES and len(list(cache.glob("*.pt"))) == 9
    # frames (no encoder) are never cached
    _bank(samples, cache_dir=tmp_path / "frames_cache")
    assert not (tmp_path / "frames_cache").exists()


def test_get_is_deterministic(samples):
    bank = _bank(samples, val_clips_per_source=2)
    assert len(bank) == 2 * len(bank.sources)
    twin = _bank(samples, val_clips_per_source=2)
    for i in range(len(bank)):
        a, b, c = bank.get(i), bank.get(i), twin.get(i)
        for key in ("image", "label", "text_tokens", "text_mask"):
            assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]), (i, key)
        if bank.sources[bank.val_clips[i][0]].kind == "positive":
            assert a["positive"] and a["label"].any()
    reseeded = ReferringClipBank(samples, SIZE, clip_length=3, prompt_style="name", foreign_negatives=1.0, seed=1)
    assert [f.tolist() for _, f in reseeded.val_clips] != [f.tolist() for _, f in bank.val_clips]


def test_encoder_fingerprint_follows_the_weights():
    conv = torch.nn.Conv2d(3, 4, 3)
    tag = encoder_fingerprint(conv)
    assert tag == encoder_fingerprint(conv) and len(tag) == 12
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] += 1.0
    assert encoder_fingerprint(conv) != tag


def test_augmented_copies_move_frames_and_masks_together(samples):
    # every draw a clear move (ranges away from 0): a draw is keyed by the image path, which pytest's
    # temporary folder changes from run to run, and a near-identity draw cannot be told from no move
    moves = {"rotate_range": [(0.15, 0.3)], "translate_range": [(3, 5), (3, 5)]}
    plain = _bank(samples)
    bank = _bank(samples, augmented_copies=2, copy_augment=moves)
    assert len(bank.sequences) == 3 * len(plain.sequences)
    assert len(bank.sources) == 3 * len(plain.sources)
    assert bank.sources[: len(plain.sources)] == plain.sources
    # fixed (validation) clips come from the original sources only
    assert [(i, f.tolist()) for i, f in bank.val_clips] == [(i, f.tolist()) for i, f in plain.val_clips]
    everything = list(range(FRAMES))
    copies = bank.sources[len(plain.sources):]
    for n, twin in enumerate(copies):
        original = plain.sources[n % len(plain.sources)]
        assert (twin.prompt, twin.dataset, twin.sample_id) == (original.prompt, original.dataset, original.sample_id)
        moved, still = bank.clip(len(plain.sources) + n, everything), plain.clip(n % len(plain.sources), everything)
        assert moved["image"].shape == still["image"].shape and not torch.equal(moved["image"], still["image"])
        assert 0 <= float(moved["image"].min()) and float(moved["image"].max()) <= 1
        if twin.kind != "positive":
            assert not moved["label"].any()
            continue
        # the same move on every frame: frames holding the target are those of the original
        assert _presence(moved["label"]) == _presence(still["label"])
        # the mask moved with the bright structure: it matches the bright pixels of its frames
        frames = moved["label"].flatten(1).any(1)
        image = moved["image"][frames, :1]
        middle = (image.amin(dim=(1, 2, 3), keepdim=True) + image.amax(dim=(1, 2, 3), keepdim=True)) / 2
        bright = image > middle
        overlap = lambda mask: float((bright & mask).sum() / (bright | mask).sum())  # noqa: E731
        moved_iou, unmoved_iou = overlap(moved["label"][frames] > 0), overlap(still["label"][frames] > 0)
        assert moved_iou > 0.85 and moved_iou > unmoved_iou + 0.02, (twin, moved_iou, unmoved_iou)
    # rebuilt: the same copies
    again = _bank(samples, augmented_copies=2, copy_augment=moves)
    for a, b in zip(bank.sequences, again.sequences):
        assert torch.equal(a, b)
    # the second copy is another draw than the first
    assert not torch.equal(bank.sequences[3], bank.sequences[6])


def test_augmented_copies_are_cached_and_checked(samples, tmp_path):
    cache = tmp_path / "cache"
    first = CountingEncoder()
    bank = _bank(samples, feature_encoder=first, feature_tag="v1", cache_dir=cache, augmented_copies=1,
                 copy_augment={"translate_range": 4})
    assert first.frames == 2 * 3 * FRAMES and len(list(cache.glob("*.pt"))) == 6
    again = CountingEncoder()
    reused = _bank(samples, feature_encoder=again, feature_tag="v1", cache_dir=cache, augmented_copies=1,
                   copy_augment={"translate_range": 4})
    assert again.calls == 0
    for a, b in zip(bank.sequences, reused.sequences):
        assert torch.equal(a, b)
    # other moves are other copies: only the copies are encoded again
    other = CountingEncoder()
    _bank(samples, feature_encoder=other, feature_tag="v1", cache_dir=cache, augmented_copies=1,
          copy_augment={"translate_range": 6})
    assert other.frames == 3 * FRAMES
    with pytest.raises(ValueError, match="augmented_copies"):
        _bank(samples, augmented_copies=-1)
    with pytest.raises(ValueError, match=r"copy_augment sets \['padding_mode'\]"):
        _bank(samples, augmented_copies=1, copy_augment={"padding_mode": "border"})
    with pytest.raises(ValueError, match="copy_augment"):
        _bank(samples, augmented_copies=1, copy_augment={"no_such_argument": 1})
