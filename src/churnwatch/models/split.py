"""Out-of-time splits of a snapshot table.

Snapshots are split by cutoff, never at random: the model is always judged on cutoffs later
than any it learnt from, and a gap of one horizon keeps the labels of the earlier side from
seeing the later side's period. With horizon H:

- test: the last `test_cutoffs` labelled cutoffs;
- validation: the last `validation_cutoffs` labelled cutoffs whose horizon ends at or before
  the first test cutoff (c + H <= first test cutoff);
- train: every labelled cutoff whose horizon ends at or before the first validation cutoff.

Cutoffs in the gaps are left out. Censored snapshots (null label) are never in any split.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from churnwatch.errors import InputError


@dataclass(frozen=True)
class TimeSplit:
    train: tuple[date, ...]
    validation: tuple[date, ...]
    test: tuple[date, ...]

    def describe(self) -> str:
        def span(ds: tuple[date, ...]) -> str:
            return f"{ds[0]}..{ds[-1]} ({len(ds)})" if ds else "-"

        return (
            f"train {span(self.train)}, validation {span(self.validation)}, test {span(self.test)}"
        )


def out_of_time_split(
    labelled_cutoffs: list[date],
    horizon_days: int,
    *,
    test_cutoffs: int = 1,
    validation_cutoffs: int = 1,
) -> TimeSplit:
    """Split labelled cutoffs into train, validation and test, later sets strictly later."""
    cuts = sorted(set(labelled_cutoffs))
    horizon = timedelta(days=horizon_days)
    if len(cuts) < test_cutoffs + validation_cutoffs + 1:
        raise InputError(
            f"an out-of-time split needs at least {test_cutoffs + validation_cutoffs + 1} "
            f"labelled cutoffs. Got {len(cuts)}: use a longer log, more frequent cutoffs "
            "(--every) or a shorter horizon."
        )
    test = tuple(cuts[-test_cutoffs:])
    before_test = [c for c in cuts if c + horizon <= test[0]]
    validation = tuple(before_test[-validation_cutoffs:])
    if not validation:
        raise InputError(
            f"no labelled cutoff ends its {horizon_days}-day horizon before the test cutoff "
            f"{test[0]}: the log is too short for this horizon"
        )
    train = tuple(c for c in cuts if c + horizon <= validation[0])
    if not train:
        raise InputError(
            f"no labelled cutoff ends its {horizon_days}-day horizon before the validation "
            f"cutoff {validation[0]}: the log is too short for this horizon"
        )
    return TimeSplit(train=train, validation=validation, test=test)
