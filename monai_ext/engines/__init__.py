"""Inference, evaluation and training engines shared by the bundles."""

from __future__ import annotations

from monai_ext.transforms import target_mask

from .box_refinement import BoxPromptRefiner, box_prompt_logits, frame_boxes
from .clip_bank import ClipSource, ReferringClipBank, encoder_fingerprint, sequence_augment_transform
from .evaluator import DatalistEvaluator, read_datalist
from .frame_bank import (
    ForeignPromptSampler,
    ReferringFrameBank,
    ReferringPair,
    photometric_augment,
    spatial_augment,
    spatial_augment_transform,
)
from .inferer import FramewiseSequenceInferer
from .preprocessing import MODALITIES, detect_modality, frame_preprocessing, intensity_preset_for
from .runner import SequenceSegmentationRunner, load_checkpoint, postprocess_mask
from .streaming import StreamingSequenceInferer, encode_frames, stream_frames, track_frames
from .test_time_augmentation import AffineTTAInferer, affine_tta_matrix
from .trainer import FrameTrainer, init_distributed
from .weight_averaging import average_state_dicts, load_state_dict_file

__all__ = [
    "AffineTTAInferer",
    "affine_tta_matrix",
    "average_state_dicts",
    "BoxPromptRefiner",
    "box_prompt_logits",
    "frame_boxes",
    "load_state_dict_file",
    "ClipSource",
    "ReferringClipBank",
    "encoder_fingerprint",
    "sequence_augment_transform",
    "DatalistEvaluator",
    "ForeignPromptSampler",
    "FrameTrainer",
    "FramewiseSequenceInferer",
    "MODALITIES",
    "ReferringFrameBank",
    "ReferringPair",
    "SequenceSegmentationRunner",
    "postprocess_mask",
    "StreamingSequenceInferer",
    "detect_modality",
    "encode_frames",
    "frame_preprocessing",
    "init_distributed",
    "intensity_preset_for",
    "load_checkpoint",
    "photometric_augment",
    "spatial_augment",
    "spatial_augment_transform",
    "read_datalist",
    "stream_frames",
    "track_frames",
    "target_mask",
]
