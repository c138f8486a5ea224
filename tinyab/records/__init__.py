"""Records: what a study or a training run leaves behind, and the only code that writes or reads it.

``study/`` writes records as trials finish, ``train/`` writes a one-trial run folder, and ``analysis/``
reads them; those layers depend on this package and never on each other. The reader
(:mod:`tinyab.records.reader`) needs pandas and is imported on its own, so that training workers
(which write records) do not load it.
"""

from tinyab.records.schema import (
    AVERAGE_MODES,
    EPOCH_COLUMNS,
    EPOCH_METRICS,
    OBJECTIVE_MODES,
    PER_CLASS_COLUMNS,
    PRUNING_MODES,
    STATUSES,
    Status,
    TrialRecord,
    objective_column,
    trial_columns,
)
from tinyab.records.writer import RecordsWriter, write_json, write_yaml

__all__ = [
    "AVERAGE_MODES",
    "EPOCH_COLUMNS",
    "EPOCH_METRICS",
    "OBJECTIVE_MODES",
    "PER_CLASS_COLUMNS",
    "PRUNING_MODES",
    "STATUSES",
    "RecordsWriter",
    "Status",
    "TrialRecord",
    "objective_column",
    "trial_columns",
    "write_json",
    "write_yaml",
]
