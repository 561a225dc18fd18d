"""bench/trainer.py's interleaving: every variant runs every round, the first one rotates,
and ratios are taken within a round (so drift between rounds cancels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import TrainConfig, load_dataset

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_rounds_rotate_and_ratios_are_paired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from trainer import interleaved  # type: ignore[import-not-found]

    order: list[str] = []
    slow_down = iter([1.0, 1.0, 1.0] + [1.0] * 3 + [3.0] * 3 + [3.0] * 3)  # warm-up, rounds

    def variant(name: str, seconds: float):  # type: ignore[no-untyped-def]
        def epoch_times(config: TrainConfig, data: object, clock: object) -> list[float]:
            order.append(name)
            return [seconds * next(slow_down)] * config.epochs

        return epoch_times

    variants = {"ref": variant("ref", 1.0), "a": variant("a", 1.1), "b": variant("b", 2.0)}
    config = TrainConfig(epochs=3)
    medians, ratios = interleaved(config, load_dataset("iris"), variants, 3, lambda: 0.0)
    assert order[3:] == ["ref", "a", "b", "a", "b", "ref", "b", "ref", "a"]
    assert ratios == pytest.approx({"ref": 1.0, "a": 1.1, "b": 2.0})  # the 3x drift cancels
    assert medians == pytest.approx({"ref": 3.0, "a": 3.3, "b": 6.0})
