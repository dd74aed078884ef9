"""monai_ext.handlers and monai_ext.metrics.EmptyPredictionRate on small MONAI engines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from ignite.engine import Events
from monai.handlers import IgniteMetricHandler, from_engine

from monai_ext.handlers import (
    EpochSeeding,
    GradientClipping,
    LastEpochValidationHandler,
    ModelExporter,
    SourceMetricsSaver,
    TrainingLog,
)
from monai_ext.metrics import EmptyPredictionRate, source_metrics


class TermsLoss(torch.nn.Module):
    """MSE that keeps its terms in ``last_terms``, as the bundles' losses do."""

    def forward(self, pred, label):
        mse = ((pred - label) ** 2).mean()
        self.last_terms = {"mse": mse.detach(), "half": mse.detach() / 2}
        return mse


def _trainer(max_epochs=3, epoch_length=4, handlers=(), scale=1.0, seed=0):
    torch.manual_seed(seed)
    network = torch.nn.Linear(4, 1)
    data = [{"image": torch.randn(2, 4) * scale, "label": torch.randn(2, 1) * scale} for _ in range(epoch_length)]
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=max_epochs, epoch_length=epoch_length, train_data_loader=data,
        network=network, optimizer=optimizer, loss_function=TermsLoss(), train_handlers=list(handlers), decollate=False,
    )
    return trainer, network, optimizer


def test_gradient_clipping_bounds_the_step():
    norms = []
    clip = GradientClipping(max_norm=0.5)
    trainer, network, _ = _trainer(max_epochs=1, scale=100.0, handlers=[clip])
    from monai.engines.utils import IterationEvents

    trainer.add_event_handler(  # runs after the clipping, before the optimiser step
        IterationEvents.BACKWARD_COMPLETED, lambda e: norms.append(float(torch.nn.utils.get_total_norm([p.grad for p in network.parameters()])))
    )
    trainer.run()
    assert norms and max(norms) <= 0.5 + 1e-5
    with pytest.raises(ValueError, match="max_norm"):
        GradientClipping(0)


def test_epoch_seeding_repeats_an_epoch_draws_whatever_came_before():
    class Draws:
        def __init__(self):
            self.seen = []

        def set_random_state(self, seed):
            self.seen.append(np.random.RandomState(seed).randint(1000))

    generator = torch.Generator()
    sampled = {}
    for run in range(2):
        dataset = Draws()
        trainer, _, _ = _trainer(max_epochs=3, handlers=[EpochSeeding(seed=5, generator=generator, dataset=dataset)])
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e, r=run: sampled.setdefault(r, []).append(int(torch.randint(1000, (1,), generator=generator))))
        trainer.run()
        assert len(set(dataset.seen)) == 3  # another seed each epoch
        sampled[f"dataset{run}"] = dataset.seen
    assert sampled[0] == sampled[1] and sampled["dataset0"] == sampled["dataset1"]
    assert EpochSeeding(seed=5).epoch_seed(2) == 5 * 100003 + 2 * 1009


def test_model_exporter_keeps_the_best_and_survives_a_resume(tmp_path):
    network = torch.nn.Linear(2, 2)
    exporter = ModelExporter(tmp_path / "model.pt", network, metric_name="dice", dtype="float16")

    class Engine:
        class state:
            metrics = {}

    for value, written in ((0.5, True), (0.4, False), (float("nan"), False), (0.6, True)):
        with torch.no_grad():
            network.weight.fill_(value if not math.isnan(value) else -1)
        Engine.state.metrics = {"dice": value}
        exporter(Engine)
        saved = torch.load(tmp_path / "model.pt", weights_only=True)
        assert saved["weight"].dtype == torch.float16
        assert (float(saved["weight"][0, 0]) == pytest.approx(value, abs=1e-3)) is written
    assert exporter.best == 0.6
    # a resumed run's exporter starts from the saved best: a worse validation writes nothing
    resumed = ModelExporter(tmp_path / "model.pt", network, metric_name="dice", export=lambda net: net)
    resumed.load_state_dict(exporter.state_dict())
    Engine.state.metrics = {"dice": 0.55}
    resumed(Engine)
    assert float(torch.load(tmp_path / "model.pt", weights_only=True)["weight"][0, 0]) == pytest.approx(0.6, abs=1e-3)


def test_training_log_records_epochs_and_stops_at_the_time_limit(tmp_path):
    log = TrainingLog(tmp_path / "train_log.jsonl", max_minutes=None)
    trainer, _, optimizer = _trainer(max_epochs=3)
    log.loss_function, log.optimizer = trainer.loss_function, optimizer
    log.attach(trainer)
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for r in records:
        assert r["half"] == pytest.approx(r["mse"] / 2) and r["loss"] == pytest.approx(r["mse"]) and r["lr"] == 0.01
    # a limit already used up: the run stops after its first epoch (and appends to the same log)
    stopped = TrainingLog(tmp_path / "train_log.jsonl", max_minutes=0.0)
    trainer, _, _ = _trainer(max_epochs=3)
    stopped.attach(trainer)
    trainer.run()
    assert trainer.state.epoch == 1 and len((tmp_path / "train_log.jsonl").read_text().splitlines()) == 4


def test_last_epoch_validation_handler_also_validates_the_last_epoch():
    data = [{"image": torch.zeros(1, 4), "label": torch.zeros(1, 1)}]
    validator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=data, network=torch.nn.Linear(4, 1))
    validated = []
    validator.add_event_handler(Events.COMPLETED, lambda e: validated.append(e.state.epoch))
    trainer, _, _ = _trainer(max_epochs=5, handlers=[LastEpochValidationHandler(validator=validator, interval=2)])
    trainer.run()
    assert validated == [2, 4, 5]


def test_empty_prediction_rate_scores_the_negatives_only():
    metric = EmptyPredictionRate()
    pred = torch.tensor([[[0, 0]], [[1, 0]], [[0, 0]], [[0, 1]]])
    label = torch.tensor([[[0, 0]], [[0, 0]], [[1, 0]], [[0, 1]]])
    metric(pred, label)
    assert float(metric.aggregate()) == pytest.approx(0.5)  # two negatives, one left empty
    metric.reset()
    metric(pred[2:], label[2:])
    assert math.isnan(float(metric.aggregate()))  # no negative: nothing to score
    # as an ignite metric of an evaluator
    data = [{"image": torch.zeros(2, 1, 2), "label": torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]])}]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"), val_data_loader=data, network=torch.nn.Identity(),
        key_val_metric={"empty": IgniteMetricHandler(metric_fn=EmptyPredictionRate(), output_transform=from_engine(["pred", "label"]))},
    )
    evaluator.run()
    assert evaluator.state.metrics["empty"] == 1.0


def test_source_metrics_saver_writes_metrics_json(tmp_path):
    meta = {"source_kind": "volume", "affine": np.diag([2.0, 2.0, 3.0, 1.0])}
    gt = torch.zeros(1, 8, 8, 4)
    gt[0, 2:6, 2:6, 1:3] = 1
    pred = gt.clone()
    pred[0, 2:6, 2:4, 1:3] = 0  # half the target
    cases = [
        {"id": "a", "target": "liver", "dataset": "d1", "split": "validation", "pred": gt.clone(), "label": gt},
        {"id": "b", "target": "liver", "dataset": "d2", "split": "validation", "pred": pred, "label": gt},
    ]

    def step(engine, case):
        return {"pred": MetaTensor(case["pred"], meta=meta), "label": case["label"]}

    from ignite.engine import Engine

    engine = Engine(step)
    SourceMetricsSaver(tmp_path).attach(engine)
    engine.run(cases)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_cases"] == 2 and [c["id"] for c in metrics["per_case"]] == ["a", "b"]
    expected = source_metrics(pred[0] > 0, gt[0] > 0, meta)
    assert metrics["per_case"][1]["dice"] == pytest.approx(expected["dice"]) == pytest.approx(2 / 3)
    assert metrics["per_case"][1]["hd95"] == pytest.approx(expected["hd95"]) and metrics["per_case"][0]["dice"] == 1.0
    assert set(metrics["per_dataset"]) == {"d1", "d2"} and metrics["per_case"][0]["split"] == "validation"
    assert engine.state.metrics["dice"] == pytest.approx((1 + 2 / 3) / 2)
