"""A worker's device as a string, without importing torch where no GPU can be present."""

from __future__ import annotations

import os

# Device nodes a GPU that torch could use leaves in /dev (NVIDIA's CUDA, AMD's ROCm).
GPU_NODES = ("/dev/nvidiactl", "/dev/kfd")


def device_name(name: str) -> str:
    """The device ``name`` ("auto", "cpu", "cuda", "cuda:N") resolves to, as
    ``models.resolve_device`` answers it. "cpu", and "auto" on a machine with no GPU
    device node, are answered without importing torch (a worker serving synthetic trials
    never needs it); anything else asks torch. Raises ValueError as ``resolve_device``."""
    if name == "cpu" or (name == "auto" and not any(map(os.path.exists, GPU_NODES))):
        return "cpu"
    from models.train import resolve_device

    return str(resolve_device(name))


__all__ = ["GPU_NODES", "device_name"]
