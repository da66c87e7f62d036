"""The report's SHAP beeswarm is the same picture on every run, and does not touch the global
NumPy generator (its dot jitter is random)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churnwatch.models.report import plot_shap_summary


def test_the_shap_summary_is_reproducible_and_leaves_the_global_generator_alone(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    # many users with tied values: the beeswarm jitters them, with random draws
    frame = pd.DataFrame({"thumbs_down_per_day": rng.integers(0, 3, 400).astype(float),
                          "sessions_per_day": rng.integers(0, 2, 400).astype(float)})  # fmt: skip
    values = np.round(frame.to_numpy() * 0.1, 1)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    np.random.seed(11)
    before = np.random.get_state()[1].copy()
    first = plot_shap_summary(values, frame, tmp_path / "a")
    assert np.array_equal(np.random.get_state()[1], before)
    np.random.seed(12)  # whatever the global state, the same picture
    second = plot_shap_summary(values, frame, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert first.stat().st_size > 10_000  # a real image
