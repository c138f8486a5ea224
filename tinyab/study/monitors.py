"""Live views of a running study, fed by the driver as epochs arrive: TensorBoard and MLflow.

- :class:`TensorBoardMonitor` writes one event file per trial under ``<run>/tensorboard/<trial_id>``
  (every epoch metric, the learning rate and the resolution), so ``tensorboard --logdir <run>`` shows
  every trial's curves while the study runs.
- :class:`MlflowMonitor` (``--mlflow URI``) logs one MLflow run per trial, nested under a run for the
  study: the trial's values and seed as params, every epoch metric with ``step = epoch``, the outcome.

Both are written by the driver process from the epoch stream it already receives, so workers (and the
GPU machine) need neither package.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tinyab.records import EPOCH_METRICS, TrialRecord
from tinyab.study.driver import TrialTask

TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/validation",
    "train_top1": "top1/train",
    "val_top1": "top1/validation",
    "val_top5": "top5/validation",
    "eval_px": "schedule/eval_resolution_px",
    "lr": "schedule/learning_rate",
    "resolution": "schedule/resolution_px",
    "seconds": "speed/epoch_seconds",
    "images_per_s": "speed/images_per_s",
}


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class TensorBoardMonitor:
    """One TensorBoard event file per trial, flushed every epoch."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / "tensorboard"
        self.writers: dict[str, Any] = {}

    def epoch(self, task: TrialTask, metrics: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = self.writers.get(task.trial_id)
        if writer is None:
            writer = self.writers[task.trial_id] = SummaryWriter(str(self.folder / task.trial_id))
            labels = ", ".join(f"{k}={v}" for k, v in task.values.items())
            writer.add_text("trial", f"{task.trial_id}: {labels}, seed {task.seed}")
        step = int(metrics["epoch"])
        for key in EPOCH_METRICS:
            value = _number(metrics.get(key))
            if value is not None:
                writer.add_scalar(TAGS[key], value, step)
        writer.flush()

    def finished(self, task: TrialTask, record: TrialRecord) -> None:
        writer = self.writers.pop(task.trial_id, None)
        if writer is not None:
            writer.add_text("outcome", f"{record.status}: best val top-1 {record.best_val_top1}")
            writer.close()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


class MlflowMonitor:
    """MLflow runs: one parent run for the study run, one nested run per trial."""

    def __init__(self, uri: str, experiment: str, run_name: str, record: Mapping[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment = found.experiment_id if found else self.client.create_experiment(experiment)
        self.parent = self.client.create_run(self.experiment, run_name=run_name).info.run_id
        for key in ("question", "metric", "mode", "profile", "margin", "alpha"):
            if record.get(key) is not None:
                self.client.log_param(self.parent, key, record[key])
        self.runs: dict[str, str] = {}

    def _run(self, task: TrialTask) -> str:
        """The trial's MLflow run, created (with its values as params) on first use."""
        run = self.runs.get(task.trial_id)
        if run is None:
            tags = {"mlflow.parentRunId": self.parent}
            run = self.client.create_run(self.experiment, run_name=task.trial_id, tags=tags).info.run_id
            self.runs[task.trial_id] = run
            for key, value in {**task.values, "seed": task.seed}.items():
                self.client.log_param(run, key, value)
        return run

    def epoch(self, task: TrialTask, metrics: Mapping[str, Any]) -> None:
        run = self._run(task)
        step = int(metrics["epoch"])
        for key in EPOCH_METRICS:
            value = _number(metrics.get(key))
            if value is not None:
                self.client.log_metric(run, key, value, step=step)

    def finished(self, task: TrialTask, record: TrialRecord) -> None:
        run = self._run(task)  # a trial that failed before its first epoch gets its run here
        del self.runs[task.trial_id]
        if record.error:
            self.client.set_tag(run, "tinyab.error", record.error)
        self.client.set_tag(run, "tinyab.status", record.status)
        if record.objective is not None:
            self.client.log_metric(run, "objective", record.objective)
        self.client.set_terminated(run, "FINISHED" if record.status == "completed" else "KILLED")

    def close(self) -> None:
        for run in self.runs.values():
            self.client.set_terminated(run, "KILLED")
        self.runs.clear()
        self.client.set_terminated(self.parent)
