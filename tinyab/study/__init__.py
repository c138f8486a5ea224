"""Studies: what varies around a recipe and why (schema, catalog, plan), and the runner that executes them.

Layers, bottom up: ``spec`` (the schema; imports neither Ray nor Optuna) and ``arms``; ``catalog``
(find, list, load); ``plan`` (the trials of a run, able to grow); ``driver`` (the run's state machine,
Ray-free); ``optuna_bridge`` and ``tune_backend`` (Optuna and Ray Tune behind the driver);
``ray_runtime`` (the Ray session); ``run`` (run folders and the one run loop); ``api`` (the commands).
The CLI imports only what this module exports.
"""

from tinyab.study.api import RunRequest, ablate, search
from tinyab.study.catalog import StudyEntry, entries

__all__ = ["RunRequest", "StudyEntry", "ablate", "entries", "search"]
