"""Rolling-origin backtest: the basis of every model choice.

For each evaluated cutoff v (a cutoff of the weekly evaluation schedule, the last `k` of them
that have enough history), a model is fitted only on the training snapshots whose horizon ends
at or before v (c + H <= v), and scored on the users of v. Nothing at or after v is seen, so
every score is out of time.

Candidates are compared on the mean per-fold ROC-AUC. Noise is accounted for with a paired
bootstrap over users (all the rows of a user, across folds, are drawn together): a candidate
later in the order (the reference first, then the simpler ones) replaces an earlier one only
when it beats it by more than one standard error of their difference (the one-standard-error
rule).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from churnwatch.errors import InputError
from churnwatch.models.metrics import SCORE_METRICS, tie_groups, user_weights, weighted_roc_auc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    cutoff: date  # the evaluated cutoff
    fit: tuple[date, ...]  # the training cutoffs: horizon ends at or before `cutoff`


def rolling_folds(
    labelled: pd.DataFrame,
    eval_cutoffs: Sequence[date],
    horizon_days: int,
    *,
    last: int = 6,
    min_positives: int = 10,
) -> list[Fold]:
    """The last `last` folds whose training rows hold at least `min_positives` churners and
    whose evaluated cutoff holds both classes. `labelled` has cutoff_date and label."""
    horizon = timedelta(days=horizon_days)
    cuts = np.asarray(labelled["cutoff_date"])
    y = labelled["label"].to_numpy()
    all_cuts = sorted(set(cuts))
    folds = []
    for v in sorted(eval_cutoffs):
        fit = tuple(c for c in all_cuts if c + horizon <= v)
        fit_pos = int(y[np.isin(cuts, fit)].sum()) if fit else 0
        at_v = y[cuts == v]
        if fit_pos >= min_positives and len(np.unique(at_v)) == 2:
            folds.append(Fold(v, fit))
    if not folds:
        raise InputError(
            f"a backtest needs an evaluated cutoff with churners and non-churners and, before it "
            f"(a {horizon_days}-day horizon earlier), at least {min_positives} churners to learn "
            "from. Got none: use a longer log, more frequent cutoffs (--every) or a shorter "
            "horizon."
        )
    return folds[-last:]


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC (ties count half): NaN when one class is missing."""
    return SCORE_METRICS["roc_auc"](y, s)


@dataclass
class Backtest:
    """Out-of-time scores of every candidate on the evaluated cutoffs of every fold."""

    folds: list[Fold]
    rows: pd.DataFrame  # user_id, cutoff_date, label, fold (index into folds)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # raw scores, aligned with rows

    @property
    def y(self) -> np.ndarray:
        return self.rows["label"].to_numpy().astype(int)

    def fold_aucs(self, name: str, idx: np.ndarray | None = None) -> np.ndarray:
        idx = np.arange(len(self.rows)) if idx is None else idx
        fold = self.rows["fold"].to_numpy()[idx]
        y, s = self.y[idx], self.scores[name][idx]
        return np.array([auc(y[fold == f], s[fold == f]) for f in range(len(self.folds))])

    def mean_auc(self, name: str, idx: np.ndarray | None = None) -> float:
        return float(np.nanmean(self.fold_aucs(name, idx)))

    def per_fold(self, name: str) -> list[dict[str, Any]]:
        out = []
        fold = self.rows["fold"].to_numpy()
        for f, spec in enumerate(self.folds):
            m = fold == f
            y, s = self.y[m], self.scores[name][m]
            out.append(
                {
                    "cutoff": spec.cutoff.isoformat(),
                    "fit_cutoffs": len(spec.fit),
                    "rows": int(m.sum()),
                    "positives": int(y.sum()),
                    **{k: SCORE_METRICS[k](y, s) for k in ("roc_auc", "pr_auc", "lift_top10")},
                }
            )
        return out

    def boot_means(self, names: Sequence[str], *, n_boot: int, seed: int) -> np.ndarray:
        """(n_boot, len(names)) mean per-fold ROC-AUC on user-bootstrap resamples; the same
        resample for every name, so differences are paired. The resamples are
        `user_resamples`', scored as weights, many at a time."""
        fold = self.rows["fold"].to_numpy()
        in_fold = [np.flatnonzero(fold == f) for f in range(len(self.folds))]
        y = self.y
        out = np.empty((n_boot, len(names)))
        done = 0
        # resamples per pass: at most 4M weights (32 MB), whatever the number of rows
        chunk = max(1, min(250, 2**22 // max(len(y), 1)))
        users = self.rows["user_id"].to_numpy()
        # each candidate's scores in each fold are sorted once, not once per pass
        y_fold = [y[r] for r in in_fold]
        s_fold = [[self.scores[n][r] for r in in_fold] for n in names]
        groups = [[tie_groups(s) for s in per_name] for per_name in s_fold]
        for w in user_weights(users, n_boot=n_boot, seed=seed, chunk=chunk):
            w_fold = [w[:, r] for r in in_fold]
            for j in range(len(names)):
                parts = zip(y_fold, s_fold[j], w_fold, groups[j], strict=True)
                aucs = np.column_stack([weighted_roc_auc(*part) for part in parts])
                with warnings.catch_warnings():  # a resample can leave a fold one class only
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out[done : done + len(w), j] = np.nanmean(aucs, axis=1)
            done += len(w)
        return out


Fitter = Callable[[pd.DataFrame, np.ndarray, np.ndarray], Any]


def run_backtest(
    data: pd.DataFrame,
    folds: list[Fold],
    candidates: Mapping[str, Fitter],
    *,
    weight: np.ndarray,
    progress: Callable[[str], None] | None = None,
) -> Backtest:
    """Fit every candidate on each fold's training rows and score the fold's cutoff.

    `data` are the labelled snapshots (dense training cutoffs included); `candidates` map a
    name to a function (X, y, sample_weight) -> fitted estimator."""
    say = progress or (lambda _m: None)
    cuts = np.asarray(data["cutoff_date"])
    y = data["label"].to_numpy().astype(int)
    parts, scores = [], {name: [] for name in candidates}  # type: ignore[var-annotated]
    for f, fold in enumerate(folds):
        fit = pd.Series(cuts).isin(fold.fit).to_numpy()
        ev = cuts == fold.cutoff
        say(f"backtest fold {f + 1}/{len(folds)}: cutoff {fold.cutoff}")
        for name, fitter in candidates.items():
            est = fitter(data[fit], y[fit], weight[fit])
            scores[name].append(np.asarray(est.predict_proba(data[ev])[:, 1], dtype=float))
        parts.append(data.loc[ev, ["user_id", "cutoff_date", "label"]].assign(fold=f))
    rows = pd.concat(parts, ignore_index=True)
    return Backtest(folds, rows, {n: np.concatenate(v) for n, v in scores.items()})


# Resamples behind the choice's standard errors. The estimate of a standard error is itself
# noisy: with 200 resamples it moved by +-7 % between bootstrap seeds, and on the eventsim dev
# log, where the rate rule's gap to the best candidate is 0.94 of its standard error, the
# choice changed with the seed. With 2,000 the estimate moves by about 2 %.
CHOICE_BOOT = 2000


@dataclass(frozen=True)
class Choice:
    name: str
    table: list[dict[str, Any]]  # per candidate: mean AUC, difference to the best, its SE
    rule: str


def one_standard_error(
    bt: Backtest, order: Sequence[str], *, n_boot: int = CHOICE_BOOT, seed: int = 0
) -> Choice:
    """The earliest candidate in `order` (the reference, then the simpler ones) whose mean
    per-fold ROC-AUC is within one paired-bootstrap standard error of the best candidate's."""
    names = [n for n in order if n in bt.scores]
    means = np.array([bt.mean_auc(n) for n in names])
    best = int(np.nanargmax(means))
    boots = bt.boot_means(names, n_boot=n_boot, seed=seed)
    table = []
    chosen: str | None = None
    for i, n in enumerate(names):
        diff = boots[:, best] - boots[:, i]
        se = float(np.nanstd(diff))
        gap = float(means[best] - means[i])
        within = gap <= se
        if within and chosen is None:
            chosen = n
        table.append({"model": n, "mean_roc_auc": float(means[i]), "gap_to_best": gap,
                      "se_of_gap": se, "within_1se": within})  # fmt: skip
    chosen = chosen or names[best]  # the best is always within 0 of itself
    rule = (
        f"best mean per-fold ROC-AUC {names[best]} ({means[best]:.3f}); chosen {chosen}: the "
        f"first in the choice order within one paired standard error over {len(bt.folds)} folds"
    )
    return Choice(chosen, table, rule)
