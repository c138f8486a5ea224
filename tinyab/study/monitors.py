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

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tinyab.records import EPOCH_METRICS, TrialRecord
from tinyab.study.driver import TrialTask

TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/validation",
    "train_top1": "top1/train",
    "val_top1": "top1/validation",
    "val_top5": "top5/validation",
    "val_loss_ema": "loss/validation_weight_average",
    "val_top1_ema": "top1/validation_weight_average",
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


class EventFile:
    """One TensorBoard event file: scalars and text, written with TensorBoard's own writer and protos
    (what ``torch.utils.tensorboard`` does, without importing torch into the driver)."""

    def __init__(self, folder: Path) -> None:
        self.writer = EventFileWriter(str(folder))

    def _add(self, value: Any, step: int) -> None:
        self.writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=[value])))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._add(Summary.Value(tag=tag, simple_value=value), step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        plugin = SummaryMetadata.PluginData(
            plugin_name="text", content=TextPluginData(version=0).SerializeToString()
        )
        tensor = TensorProto(
            dtype="DT_STRING",
            string_val=[text.encode()],
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
        )
        metadata = SummaryMetadata(plugin_data=plugin)
        self._add(Summary.Value(tag=f"{tag}/text_summary", metadata=metadata, tensor=tensor), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TensorBoardMonitor:
    """One TensorBoard event file per trial, flushed every epoch."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / "tensorboard"
        self.files: dict[str, EventFile] = {}

    def epoch(self, task: TrialTask, metrics: Mapping[str, Any]) -> None:
        events = self.files.get(task.trial_id)
        if events is None:
            events = self.files[task.trial_id] = EventFile(self.folder / task.trial_id)
            labels = ", ".join(f"{k}={v}" for k, v in task.values.items())
            events.text("trial", f"{task.trial_id}: {labels}, seed {task.seed}")
        step = int(metrics["epoch"])
        for key in EPOCH_METRICS:
            value = _number(metrics.get(key))
            if value is not None:
                events.scalar(TAGS[key], value, step)
        events.flush()

    def finished(self, task: TrialTask, record: TrialRecord) -> None:
        events = self.files.pop(task.trial_id, None)
        if events is not None:
            events.text("outcome", f"{record.status}: best val top-1 {record.best_val_top1}")
            events.close()

    def close(self) -> None:
        for events in self.files.values():
            events.close()
        self.files.clear()


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
