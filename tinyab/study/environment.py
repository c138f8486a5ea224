"""What a study ran on: package versions, git commit and hardware, for ``environment.json``."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = ["tinyab", "torch", "torchvision", "ray", "optuna", "numpy", "pandas"]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(repo: Path) -> dict[str, Any] | None:
    """HEAD and whether the work tree has uncommitted changes; None outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def visible_gpus() -> list[str]:
    """Names of the NVIDIA GPUs this process may use, read from the driver's /proc files on Linux (the
    driver then never imports torch, 2 s of a short search's wall time); torch answers elsewhere."""
    if sys.platform == "linux":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and visible.strip() in ("", "-1"):
            return []
        names = []
        for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
            model = re.search(r"^Model:\s*(.+)$", info.read_text(errors="replace"), re.M)
            names.append(model.group(1).strip() if model else "NVIDIA GPU")
        if visible is not None:
            wanted = [int(i) for i in visible.split(",") if i.strip().isdigit()]
            names = [names[i] for i in wanted if i < len(names)]
        return names
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def environment(cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    """The driver's environment; ``cluster`` adds what Ray reports about the nodes trials run on."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "git": git_commit(Path(__file__).resolve().parents[2]),
        "hardware": {
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "gpus": visible_gpus(),
        },
        "cluster": cluster or {},
    }
