"""One rule for "out of time" in evaluate, monitor and retrain: a row is out of time for a model
only when its horizon starts on or after the day the model's learnt labels end."""

from __future__ import annotations

from datetime import date

import pandas as pd

from churnwatch.models.evaluate import label_overlaps


def test_a_horizon_that_covers_a_learnt_label_is_not_out_of_time() -> None:
    """Labels learnt up to 1 March, a 14-day horizon. The 10 February row's horizon ended
    before then: learnt. The 20 February row's horizon ends on 6 March, but a cancellation on
    25 February was already a positive label of the training cutoff 11 February (or later),
    so the row repeats what the model learnt. From 1 March on, rows are out of time."""
    cutoffs = pd.to_datetime(["2024-02-10", "2024-02-20", "2024-02-29 23:00", "2024-03-01",
                              "2024-03-08"], utc=True, format="ISO8601")  # fmt: skip
    got = label_overlaps(pd.Series(cutoffs), date(2024, 3, 1))
    assert got.tolist() == [True, True, True, False, False]
    # a model whose labels' end is not known: nothing can be called in-sample
    assert not label_overlaps(pd.Series(cutoffs), None).any()
    assert label_overlaps(pd.Series([], dtype="datetime64[ns, UTC]"), date(2024, 3, 1)).size == 0
