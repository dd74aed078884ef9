"""Inferers, box refinement and weight handling the bundles' MONAI engines use.

Training and evaluation run on ``monai.engines`` (``SupervisedTrainer`` / ``SupervisedEvaluator``)
assembled in each bundle's configs; this package holds what they plug in: the sequence inferers
(frame-wise, streaming, test-time augmentation), the optional LiteMedSAM box refinement, and the
starting weights of a run (resume, fine-tune, weight averages).
"""

from __future__ import annotations

from .box_refinement import BoxPromptRefined, BoxPromptRefiner, box_prompt_logits, frame_boxes
from .inferer import FramewiseSequenceInferer
from .streaming import StreamingSequenceInferer, encode_frames, stream_frames, track_frames
from .test_time_augmentation import AffineTTAInferer, affine_tta_matrix
from .weight_averaging import average_state_dicts, load_state_dict_file
from .weights import latest_checkpoint, load_init_weights

__all__ = [
    "AffineTTAInferer",
    "BoxPromptRefined",
    "BoxPromptRefiner",
    "FramewiseSequenceInferer",
    "StreamingSequenceInferer",
    "affine_tta_matrix",
    "average_state_dicts",
    "box_prompt_logits",
    "encode_frames",
    "frame_boxes",
    "latest_checkpoint",
    "load_init_weights",
    "load_state_dict_file",
    "stream_frames",
    "track_frames",
]
