"""The Ray Tune trainable: one trial = one call of the training function, on a Ray worker.

It reports every epoch's metrics to Tune (the driver's scheduler asks Optuna's pruner and may stop
the trial right there, since a function trainable waits at each report until the driver has
decided) and, once training returns, one final report with the result summary, the history and the
per-class accuracy. An exception in training becomes a ``failed`` result with its first line, so
the actor stays reusable and the search goes on.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

RESULT_KEY = "tinyab_result"


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def where_am_i() -> str:
    """This worker's node: IP and a short node id (two nodes on one machine share the IP)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return f"{ray.util.get_node_ip_address()}/{node_id[:8]}"


def setup_torch(cpus: float, gpus: float) -> str:
    """Threads = CPUs of the trial (Ray sets OMP_NUM_THREADS=1); cap CUDA memory at a GPU fraction."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    if gpus <= 0 or not torch.cuda.is_available():
        return "cpu"
    if gpus < 1:
        torch.cuda.set_per_process_memory_fraction(gpus, 0)
    return "cuda"


def run_trial(config: dict[str, Any], train_fn: Callable[..., Any], data: str | None) -> None:
    """Tune's function trainable (``config["tinyab"]`` is the trial the driver planned)."""
    from ray import tune

    from tinyab.config import load_recipe

    trial = config["tinyab"]
    node = where_am_i()
    device = setup_torch(trial["cpus"], trial["gpus"])
    tags = {"node": node, "device": device}

    def on_epoch(metrics: dict[str, Any]) -> None:
        tune.report({**metrics, **tags})

    try:
        recipe = load_recipe(trial["recipe"])
        result = train_fn(recipe, on_epoch, data=data, device=device, progress=False)
        payload = {
            "status": result.status,
            "best_val_top1": result.best_val_top1,
            "best_epoch": result.best_epoch,
            "final_val_top1": result.final_val_top1,
            "final_train_top1": result.final_train_top1,
            "epochs_run": result.epochs_run,
            "device": str(result.device),
            "history": result.history,
            "per_class": result.per_class,
        }
    except Exception as err:  # the trial failed; the search goes on and records why
        payload = {"status": "failed", "error": first_line(err), "traceback": traceback.format_exc(limit=8)}
    tune.report({RESULT_KEY: json.dumps(payload, default=float), **tags})
