"""A worker's device name, resolved without torch where no GPU can be present."""

from __future__ import annotations

import pytest

from models import _device, device_name


def test_cpu_and_auto_without_a_gpu_are_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_device, "GPU_NODES", ("/nonexistent/nvidiactl",))
    assert device_name("cpu") == "cpu"
    assert device_name("auto") == "cpu"


def test_other_names_are_torch_s_answer() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        device_name("tpu")
    with pytest.raises(ValueError, match="cuda:99"):
        device_name("cuda:99")
