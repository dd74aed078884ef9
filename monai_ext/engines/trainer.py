"""Resumable training of a 2D text-conditioned network on referring frame pairs (single process or DDP)."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from monai_ext.atomic import atomic_write
from monai_ext.engines.frame_bank import ReferringFrameBank

__all__ = ["FrameTrainer", "init_distributed"]

logger = logging.getLogger(__name__)


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Initialise torch.distributed when launched by torchrun; return ``(rank, world_size)``.

    gloo is used on CPU, NCCL when CUDA is available (``backend`` overrides).
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return dist.get_rank(), dist.get_world_size()


def _atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


class FrameTrainer:
    """Train ``network`` on weighted random batches of a :class:`ReferringFrameBank` (or clips of a :class:`ReferringClipBank`).

    Each epoch is ``iterations`` optimiser steps of ``batch_size`` pairs drawn with the
    bank's dataset/positive balancing; the learning rate follows a cosine schedule over all
    epochs. After every ``val_interval`` epochs the validation bank is scored (mean Dice over
    positive pairs, and the share of negative pairs predicted empty) at network resolution.
    ``output_dir`` receives ``checkpoint.pt`` (everything needed to resume; an existing one is
    resumed from), ``model.pt`` (the weights with the best validation Dice, or the last ones
    when there is no validation bank) and ``train_log.jsonl`` (losses and validation figures).
    Under torchrun the network is wrapped in DistributedDataParallel, each rank draws its own
    batches, and rank 0 validates and saves.

    Args:
        network: model whose forward in training mode returns what ``loss_function`` takes.
        loss_function: ``loss_function(outputs, label) -> total`` or ``(total, {name: value})``.
        train_bank: training pairs (prompts already encoded).
        val_bank: validation pairs or None.
        output_dir: where checkpoints and logs go.
        epochs: number of epochs.
        iterations: optimiser steps per epoch.
        batch_size: pairs per step (per process).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup_iterations: linear warm-up steps.
        val_interval: epochs between validations.
        max_minutes: stop (after saving) once this wall time is spent; None for no limit.
        seed: seed of the batch sampling.
        device: torch device name.
        eval_forward: ``eval_forward(network, image, tokens, mask) -> logits`` for validation
            (default: the network in eval mode).
        text_encoder: encodes the banks' prompts once before training (skip if already encoded).
        export_model: ``export_model(network) -> module`` whose state dict is saved as
            ``model.pt`` (e.g. RecLMIS's inference-only network); default: the network itself.
        val_max_pairs: validate on at most this many pairs (evenly spaced, fixed), None for all.
        export_dtype: save ``model.pt`` with floating tensors in this dtype (e.g. ``"float16"`` to
            halve the shipped file; loading casts back), None to keep the training dtype.
        init_weights: fine-tune from these weights: a ``checkpoint.pt`` of an earlier run (its
            network only; optimiser, schedule and epoch start afresh) or a state dict file whose
            keys all belong to the network (e.g. a shipped inference ``model.pt``; parts it lacks,
            such as training-only branches, keep their initialisation). A list of such files is
            loaded in order, each over the last: ``[checkpoint.pt, averaged model.pt]`` takes the
            training-only branches from the run and the inference network from the average.
            Ignored when ``output_dir`` already holds a checkpoint to resume.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        loss_function: Callable,
        train_bank: ReferringFrameBank,
        val_bank: ReferringFrameBank | None,
        output_dir: str | os.PathLike,
        epochs: int = 10,
        iterations: int = 100,
        batch_size: int = 8,
        lr: float = 3e-4,
        weight_decay: float = 1e-4,
        warmup_iterations: int = 50,
        val_interval: int = 1,
        max_minutes: float | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        eval_forward: Callable | None = None,
        text_encoder: Any = None,
        export_model: Callable | None = None,
        val_max_pairs: int | None = 600,
        export_dtype: str | None = None,
        init_weights: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    ) -> None:
        self.rank, self.world_size = init_distributed()
        self.device = torch.device(device)
        self.network = network.to(self.device)
        self.model = self.network
        if self.world_size > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(self.network, find_unused_parameters=True)
        self.loss_function = loss_function
        self.train_bank, self.val_bank = train_bank, val_bank
        self.output_dir = Path(output_dir)
        self.epochs, self.iterations, self.batch_size = epochs, iterations, batch_size
        self.val_interval, self.max_minutes, self.seed = val_interval, max_minutes, seed
        self.eval_forward = eval_forward or (lambda net, image, tokens, mask: net(image, tokens, mask))
        self.text_encoder = text_encoder
        self.export_model = export_model or (lambda net: net)
        self.val_max_pairs = val_max_pairs
        self.export_dtype = getattr(torch, export_dtype) if export_dtype else None
        if isinstance(init_weights, (str, os.PathLike)):
            init_weights = [init_weights] if os.fspath(init_weights) else []  # "" from a config means none
        self.init_weights = [Path(f) for f in init_weights or ()]
        params = [p for p in self.network.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        total = max(1, epochs * iterations)
        warm = min(warmup_iterations, total - 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: (step + 1) / (warm + 1) if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))),
        )
        self.epoch = 0
        self.best_dice = -1.0
        self.history: list[dict[str, Any]] = []

    # -- state ------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / "checkpoint.pt"

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_dice": self.best_dice,
        }

    def exported_state(self) -> dict[str, torch.Tensor]:
        """State dict written to ``model.pt`` (``export_model`` applied, cast to ``export_dtype``)."""
        state = self.export_model(self.network).state_dict()
        if self.export_dtype is None:
            return state
        return {k: v.to(self.export_dtype) if v.is_floating_point() else v for k, v in state.items()}

    def resume(self) -> bool:
        """Load ``checkpoint.pt`` from ``output_dir`` if present; return whether it was."""
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best_dice = int(state["epoch"]), float(state["best_dice"])
        if self.rank == 0:
            logger.info("resumed from %s at epoch %d", self.checkpoint_path, self.epoch)
        return True

    def load_init_weights(self) -> list[str]:
        """Load ``init_weights`` into the network, file by file; return the network keys none provided.

        Each file may hold the training network's state (a ``checkpoint.pt`` or a state dict) or
        the exported network's (a ``model.pt`` written by ``export_model``, e.g. RecLMIS's
        inference network, whose keys lack the training network's prefix). Later files overwrite
        what earlier ones set. Every file is read and checked before the network is touched, so a
        bad file in the list leaves the network as it was.

        Raises:
            FileNotFoundError: a file does not exist.
            ValueError: a file holds keys neither network has, or a tensor of another shape that
                the module does not resample when loading.
        """
        if not self.init_weights:
            return []
        missing_files = [str(f) for f in self.init_weights if not f.is_file()]
        if missing_files:
            raise FileNotFoundError(f"init_weights file not found: {', '.join(missing_files)}")
        network_state = self.network.state_dict(keep_vars=True)
        plan = [self._init_weights_target(f, network_state) for f in self.init_weights]
        loaded: set[int] = set()
        for path, target, own, state in plan:
            target.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
            # tensors are loaded in place, so the network's own entries that share their storage were set
            loaded |= {own[k].data_ptr() for k in state}
            if self.rank == 0:
                logger.info("initialised from %s (%d tensors)", path, len(state))
        missing = sorted(k for k, t in network_state.items() if t.data_ptr() not in loaded)
        if self.rank == 0 and missing:
            logger.info("%d network tensors kept their initialisation", len(missing))
        return missing

    def _init_weights_target(
        self, path: Path, network_state: dict[str, torch.Tensor]
    ) -> tuple[Path, torch.nn.Module, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Read one ``init_weights`` file; return it with the module it fits (network or exported) and its checked state."""
        state = torch.load(path, map_location=self.device, weights_only=False)
        if isinstance(state, dict) and "model" in state and "optimizer" in state:
            state = state["model"]  # a FrameTrainer checkpoint
        target, own = self.network, network_state
        unexpected = sorted(set(state) - set(own))
        if unexpected:
            exported = self.export_model(self.network)
            exported_state = exported.state_dict(keep_vars=True)
            if exported is self.network or set(state) - set(exported_state):
                raise ValueError(f"init_weights {path} has keys this network lacks, e.g. {unexpected[:5]}")
            target, own = exported, exported_state
        wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
        if wrong:
            try:
                # a module may resample some tensors when loading (RecLMIS's position grid of
                # another image size): tried on a copy, so the network stays untouched here
                copy.deepcopy(target).load_state_dict(state, strict=False)
            except RuntimeError:
                raise ValueError(
                    f"init_weights {path}: shape mismatch for {wrong[:5]}, "
                    f"e.g. {tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)}"
                ) from None
        return path, target, own, state

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.rank != 0:
            return
        with open(self.output_dir / "train_log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)

    # -- loops ------------------------------------------------------------------------------
    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        outputs = self.model(batch["image"], batch["text_tokens"], batch["text_mask"])
        result = self.loss_function(outputs, batch["label"])
        if isinstance(result, tuple):
            total, terms = result
        else:
            total, terms = result, dict(getattr(self.loss_function, "last_terms", {}) or {})
        return total, {k: float(v) for k, v in terms.items()}

    @torch.no_grad()
    def validate(self, bank: ReferringFrameBank | None = None, threshold: float = 0.5, batch_size: int = 16) -> dict[str, float]:
        """Mean Dice over positive pairs and share of empty predictions on negative pairs."""
        bank = bank or self.val_bank
        if bank is None or len(bank) == 0:
            return {}
        self.network.eval()
        indices = list(range(len(bank)))
        if self.val_max_pairs is not None and len(indices) > self.val_max_pairs:
            step = len(indices) / self.val_max_pairs
            indices = [indices[int(i * step)] for i in range(self.val_max_pairs)]
        dices, empty_on_negative = [], []
        for start in range(0, len(indices), batch_size):
            items = [bank.get(i) for i in indices[start : start + batch_size]]
            image = torch.stack([it["image"] for it in items]).to(self.device)
            tokens = torch.stack([it["text_tokens"] for it in items]).to(self.device)
            mask = torch.stack([it["text_mask"] for it in items]).to(self.device)
            logits = self.eval_forward(self.network, image, tokens, mask)
            if logits.ndim == 4:  # frames: first output channel; clips (B, T, 1, H, W) are scored whole
                logits = logits[:, :1]
            pred = torch.sigmoid(logits) > threshold
            for p, it in zip(pred.cpu(), items):
                g = it["label"] > 0.5
                if it["positive"]:
                    inter = (p & g).sum().item()
                    dices.append(2 * inter / max(1, p.sum().item() + g.sum().item()))
                else:
                    empty_on_negative.append(float(not p.any()))
        self.network.train()
        return {
            "val_dice": float(sum(dices) / len(dices)) if dices else float("nan"),
            "val_empty_on_negative": float(sum(empty_on_negative) / len(empty_on_negative)) if empty_on_negative else float("nan"),
        }

    def run(self) -> dict[str, Any]:
        """Train from the current (or resumed) epoch to ``epochs``; return the last log record."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.text_encoder is not None:
            for bank in (self.train_bank, self.val_bank):
                if bank is not None and bank.text_features is None:
                    bank.encode_prompts(self.text_encoder)
        if not self.resume():
            self.load_init_weights()
        start_time = time.perf_counter()
        self.network.train()
        record: dict[str, Any] = {}
        while self.epoch < self.epochs:
            generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch * 1009 + self.rank)
            sums: dict[str, float] = {}
            t0 = time.perf_counter()
            for batch in self.train_bank.batches(self.batch_size, self.iterations, generator):
                total, terms = self._loss(batch)
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
                self.optimizer.step()
                self.scheduler.step()
                terms["loss"] = float(total.detach())
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
            self.epoch += 1
            record = {"epoch": self.epoch, **{k: v / self.iterations for k, v in sums.items()}}
            record["lr"] = self.scheduler.get_last_lr()[0]
            record["epoch_seconds"] = round(time.perf_counter() - t0, 1)
            if self.rank == 0:
                if self.val_bank is not None and (self.epoch % self.val_interval == 0 or self.epoch == self.epochs):
                    record.update(self.validate())
                dice = record.get("val_dice", float("nan"))
                improved = self.val_bank is None or (not math.isnan(dice) and dice > self.best_dice)
                if improved:
                    self.best_dice = dice if not math.isnan(dice) else self.best_dice
                    _atomic_save(self.exported_state(), self.output_dir / "model.pt")
                _atomic_save(self._state(), self.checkpoint_path)
            self._log(record)
            if self.max_minutes is not None and (time.perf_counter() - start_time) / 60 > self.max_minutes:
                if self.rank == 0:
                    logger.info("stopping after %.1f min (max_minutes); resume to continue", self.max_minutes)
                break
        if self.world_size > 1:
            dist.barrier()
        return record
