"""Tiny ImageNet: layout reader (zip or folder), download, uint8 cache, device batches and augmentation."""

from tinyab.data.arrays import DatasetArrays, load_arrays
from tinyab.data.batches import Batch, eval_batches, train_batches
from tinyab.data.download import OFFICIAL_URL, download, ensure_dataset
from tinyab.data.info import DatasetInfo, dataset_info
from tinyab.data.layout import TinyImageNetSource, open_dataset
from tinyab.data.locate import default_cache_dir, default_dataset_dir, resolve_data_path, tinyab_home

__all__ = [
    "OFFICIAL_URL",
    "Batch",
    "DatasetArrays",
    "DatasetInfo",
    "TinyImageNetSource",
    "dataset_info",
    "default_cache_dir",
    "default_dataset_dir",
    "download",
    "ensure_dataset",
    "eval_batches",
    "load_arrays",
    "open_dataset",
    "resolve_data_path",
    "tinyab_home",
    "train_batches",
]
