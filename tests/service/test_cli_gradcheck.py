"""``hpsearch gradcheck``: exit 0 for right gradients, 1 for a wrong backward, 2 for a
spec that cannot be read or checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from service.cli import app
from tests.models.test_gradcheck import break_relu


def _spec_file(tmp_path: Path, **spec: Any) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


SPACE = {
    "conv_channels": {"type": "layers", "depth": [1, 2], "units": [2, 6]},
    "pool": {"type": "categorical", "choices": ["max", "avg"]},
    "conv_batch_norm": {"type": "categorical", "choices": [True, False]},
    "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
}


def test_cli_passes_a_sane_spec_and_fails_a_wrong_backward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec_file(
        tmp_path,
        name="g",
        dataset="digits",
        model="cnn",
        search={"sampler": "random", "n_trials": 10, "seed": 2, "space": SPACE},
        training={"hidden": [8]},
    )
    runner = CliRunner()
    ok = runner.invoke(app, ["gradcheck", str(spec), "--trials", "2"])
    assert ok.exit_code == 0, ok.output
    assert "configuration 1: conv_batch_norm=" in ok.output
    assert "all 2 configurations within 1e-05" in ok.output
    break_relu(monkeypatch)
    broken = runner.invoke(app, ["gradcheck", str(spec), "--trials", "2"])
    assert broken.exit_code == 1
    assert "FAIL" in broken.output and "gradients differ by more than 1e-05" in broken.output


def test_cli_refuses_a_bad_spec_with_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["gradcheck", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "spec file not found" in missing.output
    invalid = _spec_file(tmp_path, name="g", dataset="iris", model="cnn")
    refused = runner.invoke(app, ["gradcheck", str(invalid)])
    assert refused.exit_code == 2 and "cnn needs an image dataset" in refused.output
    uploaded = _spec_file(tmp_path, name="g", dataset="houses")
    local = runner.invoke(app, ["gradcheck", str(uploaded)])
    assert local.exit_code == 2 and "needs a built-in dataset" in local.output
