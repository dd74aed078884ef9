"""ReferringDataset and ReferringPrompts on tiny synthetic NIfTI volumes: windows, negatives, sampling,
prompt draws, feature cache, augmented copies, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, RandAffined, SqueezeDimd

from monai_ext.data import ReferringDataset, ReferringPrompts, module_fingerprint, record_content_hash
from monai_ext.prompts.encoder import TextFeatures

SIZE = (32, 32)
FRAMES = 6
WORDS = {"liver": 1.0, "spleen": 2.0, "left": 3.0, "kidney": 4.0, "hepar": 5.0, "lien": 6.0}


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
                tokens[i, j] = WORDS.get(word, 9.0)
                mask[i, j] = True
        return TextFeatures(tokens=tokens, mask=mask, pooled=tokens.mean(1))


class CountingEncoder(torch.nn.Module):
    """Feature encoder ``(B, 3, 32, 32) -> (B, 12, 8, 8)`` that counts the frames it encodes."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))
        self.frames = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.frames += x.shape[0]
        return torch.nn.functional.avg_pool2d(x, 4).repeat(1, 4, 1, 1) * self.scale.detach()


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
    tmp = tmp_path_factory.mktemp("referring_data")
    a1, a1_seg = _volume(tmp, "a1", {1: (2, 3, 4)})
    a2, a2_seg = _volume(tmp, "a2", {1: (5,)})  # the target only in the last slice
    b1, b1_seg = _volume(tmp, "b1", {2: (1, 2)})
    return [
        _sample("a1_liver", a1, a1_seg, [1], "liver", "ds_a"),
        _sample("a2_liver", a2, a2_seg, [1], "liver", "ds_a"),
        _sample("b1_spleen", b1, b1_seg, [2], "spleen", "ds_b"),
        _sample("b1_left_kidney", b1, b1_seg, [3], "left kidney", "ds_b"),  # no value 3: absent throughout
    ]


def _dataset(samples, styles=("name",), foreign=1.0, resample=False, **kwargs) -> ReferringDataset:
    prompts = ReferringPrompts(styles=styles, foreign_negatives=foreign, resample_foreign=resample, seed=0)
    return ReferringDataset(samples, SIZE, WordEncoder(), prompts=prompts, **kwargs)


def _presence(label: torch.Tensor) -> list[bool]:
    return label.flatten(1).any(1).tolist()


def test_frame_examples_are_one_per_frame_with_their_negatives(samples):
    data = _dataset(samples)
    assert len(data.sequences) == 3  # b1 is read once for its two samples
    assert all(s.dtype == torch.uint8 and s.shape == (FRAMES, 3, *SIZE) for s in data.sequences)
    kinds = [e.kind for e in data.data]
    # 4 samples x 6 frames of own-target windows, target frames 3 + 1 + 2 positive; a foreign window per frame
    assert kinds.count("positive") == 6 and kinds.count("absent") == 24 - 6 and kinds.count("foreign") == 3 * FRAMES
    for index, example in enumerate(data.data):
        item = data[index]
        assert item["image"].shape == (1, 3, *SIZE) and item["image"].dtype == torch.float32
        assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
        assert item["label"].shape == (1, 1, *SIZE)
        assert item["positive"] == bool(item["label"].any()) == (example.kind == "positive")
        if example.kind == "positive":  # the label sits on the bright structure of its frame
            inside, outside = item["image"][:, :1][item["label"] > 0], item["image"][:, :1][item["label"] == 0]
            assert float(inside.min()) > float(outside.max())
        text = data.prompts.texts[int(torch.nonzero((data.prompts.text_features[0] == item["text_tokens"]).all(-1).all(-1))[0])]
        if example.kind == "foreign":  # another dataset's target, never the example's own
            assert text in {"ds_a": {"spleen", "left kidney"}, "ds_b": {"liver"}}[example.dataset], text
        else:
            assert text == {"a1_liver": "liver", "a2_liver": "liver", "b1_spleen": "spleen", "b1_left_kidney": "left kidney"}[example.sample_id]
    # padded text: "liver" is one token, "left kidney" two
    liver = data[next(i for i, e in enumerate(data.data) if e.sample_id == "a1_liver" and e.kind != "foreign")]
    kidney = data[next(i for i, e in enumerate(data.data) if e.sample_id == "b1_left_kidney")]
    assert liver["text_tokens"].shape == kidney["text_tokens"].shape == (2, 4)
    assert liver["text_mask"].tolist() == [True, False] and kidney["text_mask"].tolist() == [True, True]


def test_clip_windows_hold_the_target_in_some_frame(samples):
    data = _dataset(samples, clip_length=3, foreign=0.0)
    # windows that fit: starts 0..3 per sample
    assert len(data.data) == 4 * (FRAMES - 2)
    expected = {"a1_liver": {2, 3, 4}, "a2_liver": {5}, "b1_spleen": {1, 2}, "b1_left_kidney": set()}
    for index, example in enumerate(data.data):
        item = data[index]
        frames = list(range(example.start, example.start + 3))
        assert item["image"].shape == (3, 3, *SIZE) and item["label"].shape == (3, 1, *SIZE)
        assert _presence(item["label"]) == [f in expected[example.sample_id] for f in frames]
        assert (example.kind == "positive") == bool(expected[example.sample_id] & set(frames))
    # a sequence shorter than the clip is one window, its last frame repeated
    short = _dataset(samples[:1], clip_length=4, clip_stride=2, foreign=0.0)
    assert [e.start for e in short.data] == [0]
    assert _presence(short[0]["label"]) == [False, True, True, False]  # frames 0, 2, 4, 5 (6 -> last)


def test_sampling_weights_give_each_dataset_its_share_and_three_quarters_positives(samples):
    data = _dataset(samples, dataset_weights={"ds_a": 3.0})
    weights = data.sampling_weights()
    assert torch.isclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    share = lambda pred: float(sum(w for w, e in zip(weights, data.data) if pred(e)))  # noqa: E731
    assert share(lambda e: e.dataset == "ds_a") == pytest.approx(0.75)
    assert share(lambda e: e.dataset == "ds_a" and e.kind == "positive") == pytest.approx(0.75 * 0.75)
    with pytest.raises(ValueError, match="not in the data"):
        _dataset(samples, dataset_weights={"ds_c": 1.0}).sampling_weights()


def test_training_draws_pick_among_the_styles_and_resample_foreign_targets(samples):
    data = _dataset(samples, styles=("name", "synonyms"), resample=True)
    liver_set = {data.prompts.texts[i] for i in data.prompts._sets[data.data[0].prompt_set]}
    assert "liver" in liver_set and len(liver_set) > 1  # the library's synonyms of liver
    foreign = [i for i, e in enumerate(data.data) if e.kind == "foreign" and e.dataset == "ds_b"]
    seen = set()
    for _ in range(5):
        for i in foreign:
            tokens = data[i]["text_tokens"]
            seen.add(int(torch.nonzero((data.prompts.text_features[0] == tokens).all(-1).all(-1))[0]))
    assert {data.prompts.texts[i] for i in seen} <= liver_set and len(seen) > 1
    # validation reads are fixed: the set's first text, whatever was drawn before
    fixed = _dataset(samples, styles=("name", "synonyms"), resample=True, fixed_prompts=True)
    assert all(torch.equal(fixed[i]["text_tokens"], fixed[i]["text_tokens"]) for i in range(len(fixed)))


def test_the_same_seed_draws_the_same_examples(samples):
    augment = Compose([SqueezeDimd(keys=["image", "label"], dim=0), RandAffined(keys=["image", "label"], prob=1.0, rotate_range=0.5)])
    data = _dataset(samples, styles=("name", "synonyms"), resample=True, transform=augment)
    reads = []
    for _ in range(2):
        data.set_random_state(7)
        reads.append([data[i] for i in range(0, len(data), 5)])
    for a, b in zip(*reads):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["text_tokens"], b["text_tokens"])
    data.set_random_state(8)
    assert not all(torch.equal(a["image"], data[i * 5]["image"]) for i, a in enumerate(reads[0]))


def test_max_examples_keeps_an_even_fixed_subset(samples):
    full = _dataset(samples)
    part = _dataset(samples, max_examples=10)
    assert len(part) == 10 and part.data == [full.data[int(i * len(full) / 10)] for i in range(10)]


def test_features_are_cached_by_content(samples, tmp_path):
    encoder = CountingEncoder()
    tag = module_fingerprint(encoder)
    data = _dataset(samples, clip_length=2, feature_encoder=encoder, feature_tag=tag, cache_dir=tmp_path)
    assert encoder.frames == 3 * FRAMES and len(list(tmp_path.glob("*.pt"))) == 3
    assert data[0]["image"].shape == (2, 12, 8, 8) and data[0]["label"].shape == (2, 1, *SIZE)
    again = _dataset(samples, clip_length=2, feature_encoder=encoder, feature_tag=tag, cache_dir=tmp_path)
    assert encoder.frames == 3 * FRAMES  # read from the cache
    assert all(torch.equal(a, b) for a, b in zip(data.sequences, again.sequences))
    # plain tensors whether computed or read from the cache, so that examples collate into batches
    assert all(type(d[0][k]) is torch.Tensor for d in (data, again) for k in ("image", "label"))
    # other weights: another fingerprint, another key, encoded again
    other = CountingEncoder(scale=2.0)
    assert module_fingerprint(other) != tag
    _dataset(samples, clip_length=2, feature_encoder=other, feature_tag=module_fingerprint(other), cache_dir=tmp_path)
    assert other.frames == 3 * FRAMES and len(list(tmp_path.glob("*.pt"))) == 6


def test_record_hash_follows_every_byte_of_the_files(samples, tmp_path):
    image = Path(samples[0]["image"]).read_bytes()
    copy_path = tmp_path / "copy.nii.gz"
    copy_path.write_bytes(image)
    record = {"image": str(copy_path), "labels": [{"label": samples[0]["label"]}], "modality": "ct"}
    first = record_content_hash(record)
    changed = bytearray(image)
    changed[-1] ^= 1  # the last byte: beyond any 4 KiB prefix
    copy_path.write_bytes(bytes(changed))
    assert record_content_hash(record) != first
    assert record_content_hash(dict(record, modality="mr")) != record_content_hash(record)


def test_augmented_copies_move_frames_and_masks_together(samples, tmp_path):
    # ranges away from 0 (a (min, max) pair per axis): a copy's draw is keyed by the image path, which pytest's
    # temporary folder changes per run, and a near-identity draw would leave the mask where it was
    move = RandAffined(keys=["image", "label"], mode=["bilinear", "nearest"], prob=1.0, rotate_range=((0.15, 0.3),),
                       translate_range=((3, 5), (3, 5)))
    data = _dataset(samples[:1], foreign=0.0, augmented_copies=2, copy_transform=move, cache_dir=tmp_path)
    assert len(data.sequences) == 3 and len(list(tmp_path.glob("*.pt"))) == 3
    original, copy = data.sequences[0].float(), data.sequences[1].float()
    assert not torch.equal(original, copy)
    masks = {e.sequence: data.masks[e.masks] for e in data.data if e.masks >= 0}
    for sequence in (1, 2):
        # the moved bright structure is where the moved mask is, in every frame with the target
        frames, mask = data.sequences[sequence].float()[:, 0], masks[sequence]
        for t in (2, 3, 4):
            inside, outside = frames[t][mask[t]], frames[t][~mask[t]]
            assert inside.mean() > outside.mean() + 100
        assert not torch.equal(mask, masks[0])
    # rebuilt from the cache: the same copies
    again = _dataset(samples[:1], foreign=0.0, augmented_copies=2, copy_transform=move, cache_dir=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(data.sequences, again.sequences))


def test_errors_name_the_problem(samples, tmp_path):
    with pytest.raises(ValueError, match="no labelled samples"):
        _dataset([dict(samples[0], label=None)])
    with pytest.raises(ValueError, match="copy_transform"):
        _dataset(samples, augmented_copies=1)
    with pytest.raises(ValueError, match="clip_length"):
        _dataset(samples, clip_length=0)
    with pytest.raises(ValueError, match="prompt styles"):
        ReferringPrompts(styles=("haiku",))
    short = tmp_path / "short_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 3), np.uint8), np.eye(4)), short)
    with pytest.raises(ValueError, match="label has 3 frames, image 6"):
        _dataset([dict(samples[0], label=str(short))])
    prompts = ReferringPrompts()
    prompts.add_target("ds", "liver", "ct")
    with pytest.raises(RuntimeError, match="not encoded"):
        prompts.features(0)
