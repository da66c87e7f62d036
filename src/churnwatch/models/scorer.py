"""The served model compiled for speed, with exact per-feature reasons.

A registered `ChurnModel` is a calibrated scikit-learn pipeline: a ColumnTransformer
(median imputation, optionally log and scaling; one-hot categories) then a tree ensemble or a
logistic regression. Calling it through pandas costs milliseconds per row, most of it in the
ColumnTransformer. `Scorer` compiles the fitted transformer into numpy (medians, scales and a
lookup table per category, probed from the fitted encoder itself), asks the model for its margin
and its SHAP contributions in one native call (LightGBM `pred_contrib`, XGBoost
`pred_contribs`, shap's TreeExplainer for random forests, coefficient times value for the
logistic regression), and maps the margin to a probability with the same calibrator.

`Scorer.verify` checks the compiled path against the pipeline on real rows at load time; a
model the compiler does not know, or one that disagrees, is served through the pipeline
instead (slower, and without reasons).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnwatch import optional
from churnwatch.errors import ChurnwatchError
from churnwatch.models.calibration import logit

log = logging.getLogger(__name__)
_UNKNOWN = "\x00unknown category\x00"


class ModelError(ChurnwatchError):
    """The model cannot be compiled or does not agree with its pipeline."""


@dataclass(frozen=True)
class Scores:
    """Probabilities for n rows and, when the model is explainable, the reasons behind them.

    `contributions[i, j]` is feature j's SHAP value for row i in the model's margin units
    (log-odds for boosted trees and the logistic regression, probability for the random
    forest); `base + contributions[i].sum() == margin[i]`.
    """

    probability: np.ndarray
    margin: np.ndarray | None = None
    base: float | None = None
    contributions: np.ndarray | None = None  # (n, features), per source feature


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class _Transform:
    """The fitted ColumnTransformer as numpy: numeric block then one-hot blocks."""

    def __init__(self, ct: Any, features: Sequence[str]) -> None:
        kinds = {name: (trans, list(cols)) for name, trans, cols in ct.transformers_}
        if set(kinds) - {"num", "cat", "remainder"}:
            raise ModelError(f"unexpected transformer blocks {sorted(kinds)}")
        num, self.num_cols = kinds["num"]
        steps = dict(num.named_steps) if hasattr(num, "named_steps") else {"impute": num}
        if set(steps) - {"impute", "log", "scale"}:
            raise ModelError(f"unexpected numeric steps {sorted(steps)}")
        stats = np.asarray(steps["impute"].statistics_, dtype=float)
        self.strategy = str(steps["impute"].strategy)
        self.keep = ~np.isnan(stats)  # all-missing training columns are dropped
        self.medians = stats[self.keep]
        self.log = "log" in steps
        self.mean = steps["scale"].mean_ if "scale" in steps else None
        self.scale = steps["scale"].scale_ if "scale" in steps else None
        self.cat_cols: list[str] = []
        self.tables: list[dict[Any, np.ndarray]] = []
        self.unknown: list[np.ndarray] = []
        if "cat" in kinds and kinds["cat"][0] != "drop" and kinds["cat"][1]:  # a log's catalog
            # may have no categories: the block then selected no column and was never fitted
            self._compile_categories(*kinds["cat"])
        self.kept = [c for c, k in zip(self.num_cols, self.keep, strict=True) if k]
        self.names = list(ct.get_feature_names_out())
        # the source feature of each output column, for summing one-hot contributions
        source = self.kept + [c for c, t in zip(self.cat_cols, self.tables, strict=True)
                         for _ in range(len(next(iter(t.values()))))]  # fmt: skip
        order = {f: i for i, f in enumerate(features)}
        self.source_index = np.array([order[s] for s in source])
        self.n_features = len(features)

    def _compile_categories(self, ohe: Any, cols: list[str]) -> None:
        self.cat_cols = cols
        width = [0] * len(cols)
        names = list(ohe.get_feature_names_out(cols))
        j = 0
        for name in names:  # blocks are contiguous and in column order
            while not name.startswith(cols[j] + "_"):
                j += 1
            width[j] += 1
        offsets = np.cumsum([0, *width])
        for i, col in enumerate(cols):
            values = [v for v in ohe.categories_[i] if not _missing(v)] + [None, _UNKNOWN]
            probe = pd.DataFrame({c: [ohe.categories_[k][0]] * len(values)
                                  for k, c in enumerate(cols)})  # fmt: skip
            probe[col] = pd.Series(values, dtype=object)
            out = ohe.transform(probe)
            out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
            block = np.asarray(out[:, offsets[i] : offsets[i + 1]], dtype=float)
            table = {v: block[r] for r, v in enumerate(values[:-2])}
            table[None] = block[-2]
            self.tables.append(table)
            self.unknown.append(block[-1])

    def numeric(self, x: np.ndarray) -> np.ndarray:
        x = x[:, self.keep]
        x = np.where(np.isnan(x), self.medians, x)
        if self.log:
            x = np.sign(x) * np.log1p(np.abs(x))
        if self.mean is not None:
            x = (x - self.mean) / self.scale
        return x

    def categories(self, values: list[list[Any]]) -> np.ndarray:
        """values[i][k]: row i's value of categorical column k (None when missing)."""
        blocks = [
            np.vstack([t.get(_key(row[k]), u) for row in values]) if values else np.empty((0, 0))
            for k, (t, u) in enumerate(zip(self.tables, self.unknown, strict=True))
        ]
        return np.hstack(blocks) if blocks else np.empty((len(values), 0))

    def records(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        try:  # None becomes NaN; numbers as they are
            x = np.array([[r.get(c) for c in self.num_cols] for r in rows], dtype=float)
        except (TypeError, ValueError):
            x = np.array([[_num(r.get(c)) for c in self.num_cols] for r in rows], dtype=float)
        x = self.numeric(x.reshape(len(rows), len(self.num_cols)))
        if not self.cat_cols:
            return x
        cats = self.categories([[r.get(c) for c in self.cat_cols] for r in rows])
        return np.hstack([x, cats])

    def frame(self, df: pd.DataFrame) -> np.ndarray:
        df = df.reindex(columns=[*self.num_cols, *self.cat_cols])
        x = self.numeric(df[self.num_cols].to_numpy(dtype=float, na_value=np.nan))
        if not self.cat_cols:
            return x
        cats = df[self.cat_cols].astype(object).to_numpy().tolist()
        return np.hstack([x, self.categories(cats)])

    def by_feature(self, contrib: np.ndarray) -> np.ndarray:
        """Sum output-column contributions into one column per source feature."""
        out = np.zeros((contrib.shape[0], self.n_features))
        np.add.at(out.T, self.source_index, contrib.T)
        return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _key(v: Any) -> Any:
    return None if _missing(v) else v


def _num(v: Any) -> float:
    if v is None or isinstance(v, bool):
        return float("nan") if v is None else float(v)
    return float(v)


def _compile_calibrator(cal: Any) -> Any:
    """The calibration map as numpy (sklearn's per-call input checks cost ~0.1 ms a row)."""
    if cal is None:
        return lambda s: s
    constant = getattr(cal, "constant_", None)
    inner = cal.calibrator_
    if constant is not None:
        return lambda s: np.full(len(s), constant)
    if cal.method == "sigmoid":
        a, b = float(inner.coef_[0, 0]), float(inner.intercept_[0])

        def platt(s: np.ndarray) -> np.ndarray:
            return _sigmoid(a * logit(s) + b)

        return platt
    if cal.method == "isotonic" and inner.out_of_bounds == "clip":
        xs, ys = np.asarray(inner.X_thresholds_), np.asarray(inner.y_thresholds_)
        return lambda s: np.interp(s, xs, ys)
    return cal.predict_scores


class Scorer:
    """Fast scoring and exact SHAP reasons for one registered ChurnModel."""

    def __init__(self, churn_model: Any) -> None:
        self.model = churn_model
        self.features: list[str] = list(churn_model.features)
        self.threshold = float(churn_model.threshold)
        # what may be given as a reason: the features stable across the backtest folds (models
        # logged before that list existed give every feature)
        stable = getattr(churn_model, "reason_features", None)
        self.reason_features: list[str] = list(self.features if stable is None else stable)
        est = churn_model.estimator
        self.calibrator = est if hasattr(est, "predict_scores") else None
        self._calibrate = _compile_calibrator(self.calibrator)
        self.pipeline = getattr(est, "estimator", est)
        self.kind = "pipeline"
        self._fast: tuple[_Transform, Any] | None = None
        try:
            self._fast = self._compile()
        except (ModelError, AttributeError, KeyError, ValueError, TypeError) as exc:
            log.warning("serving the model through its pipeline, without reasons: %s", exc)

    @property
    def explains(self) -> bool:
        return self._fast is not None

    @functools.cached_property
    def typical(self) -> dict[str, float]:
        """Each numeric feature's median over the rows the model learnt from: the typical user
        a reason compares with. Kept in the model since it was; for a model logged before, the
        medians its imputer learnt, when it imputes medians (the rate rule imputes 0, which
        says nothing of a typical user). Computed once: every explained request reads it."""
        kept = getattr(self.model, "typical", None)
        if kept is not None:
            return dict(kept)
        if self._fast is None or self._fast[0].strategy != "median":
            return {}
        t = self._fast[0]
        return {c: float(m) for c, m in zip(t.kept, t.medians, strict=True)}

    def _compile(self) -> tuple[_Transform, Any]:
        steps = getattr(self.pipeline, "steps", None)
        if not steps or len(steps) != 2:
            raise ModelError("expected a pipeline of a transformer and a model")
        ct, model = steps[0][1], steps[1][1]
        model = getattr(model, "booster_", model)  # MonotoneBooster -> the fitted booster
        transform = _Transform(ct, self.features)
        kind = type(model).__name__
        if kind == "LGBMClassifier":
            native: Any = model.booster_
        elif kind == "XGBClassifier":
            native = model.get_booster()
            native.set_param({"nthread": 1})  # a few rows at a time: threads cost more
        elif kind == "RandomForestClassifier":
            native = optional.shap().TreeExplainer(
                model
            )  # its C++ predict is ~1000x faster per row
        elif kind in ("LogisticRegression", "RateRule"):  # linear: coef_ and intercept_
            native = model
        else:
            raise ModelError(f"no compiled path for {kind}")
        self.kind = kind
        return transform, native

    # -- scoring -------------------------------------------------------------------------
    def score_records(self, rows: Sequence[Mapping[str, Any]], *, explain: bool = True) -> Scores:
        if self._fast is None:
            return self._slow(pd.DataFrame(list(rows)))
        return self._score(self._fast[0].records(rows), explain)

    def score_frame(self, df: pd.DataFrame, *, explain: bool = True) -> Scores:
        if self._fast is None:
            return self._slow(df)
        return self._score(self._fast[0].frame(df), explain)

    def _slow(self, df: pd.DataFrame) -> Scores:
        p = np.asarray(self.model.predict(None, df), dtype=float)
        return Scores(probability=p)

    def _score(self, xt: np.ndarray, explain: bool) -> Scores:
        if self._fast is None:  # only called when the model compiled to a fast path
            raise RuntimeError(f"no fast path for a {self.kind}")
        transform, native = self._fast
        base: float | None = None
        contrib: np.ndarray | None = None
        if self.kind == "RandomForestClassifier":
            raw = np.asarray(native.model.predict(xt), dtype=float)
            raw = raw[:, 1] if raw.ndim == 2 else raw
            margin = raw
            if explain:
                values = np.asarray(native.shap_values(xt, check_additivity=False))
                contrib = values[:, :, 1] if values.ndim == 3 else values
                base = float(np.atleast_1d(native.expected_value)[-1])
        elif not explain:  # the margin alone: a fraction of the cost of SHAP values
            if self.kind == "LGBMClassifier":
                margin = np.asarray(native.predict(xt, raw_score=True, num_threads=1), float)
            elif self.kind == "XGBClassifier":
                margin = np.asarray(native.inplace_predict(xt, predict_type="margin"), float)
            else:
                margin = xt @ native.coef_[0] + native.intercept_[0]
            raw = _sigmoid(margin)
        else:
            if self.kind == "LGBMClassifier":
                full = np.asarray(native.predict(xt, pred_contrib=True, num_threads=1), float)
            elif self.kind == "XGBClassifier":
                dm = optional.xgboost().DMatrix(xt, feature_names=native.feature_names)
                full = np.asarray(native.predict(dm, pred_contribs=True), dtype=float)
            else:  # logistic: contribution = coefficient x value, reference point x = 0
                coef = native.coef_[0]
                full = np.hstack([xt * coef, np.full((len(xt), 1), native.intercept_[0])])
            margin = full.sum(axis=1)
            raw = _sigmoid(margin)
            contrib, base = full[:, :-1], float(full[0, -1]) if len(full) else 0.0
        p = self._calibrate(raw)
        by_feature = transform.by_feature(contrib) if contrib is not None else None
        return Scores(np.asarray(p, dtype=float), margin, base, by_feature)

    def verify(self, df: pd.DataFrame, *, tolerance: float = 1e-6) -> float:
        """Largest gap between the compiled path and the pipeline on `df`; on a gap above
        `tolerance`, fall back to the pipeline and log why."""
        if self._fast is None or df.empty:
            return 0.0
        fast = self.score_frame(df, explain=False).probability
        slow = self._slow(df).probability
        gap = float(np.max(np.abs(fast - slow)))
        if gap > tolerance:
            log.warning("compiled scorer differs from the pipeline by %.3g: not used", gap)
            self._fast = None
            self.kind = "pipeline"
        return gap
