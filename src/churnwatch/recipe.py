"""The training recipe: everything needed to rebuild what a model was trained on and to read
its scores the way they were meant.

One typed object, logged once with the model's run (as `recipe.json` and as `recipe_*`
parameters) and read back by one function, `tracking.read_recipe`. Serving, batch scoring,
monitoring, retraining, evaluation and the dashboard build their populations and labels from
it, never from their own defaults.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from churnwatch.errors import ConfigError
from churnwatch.features.catalog import FeatureSpec, catalog
from churnwatch.labels import ChurnDefinition, CutoffSchedule

ARTIFACT = "recipe.json"
FORMAT = 1


def feature_version(spec: FeatureSpec | None = None) -> str:
    """A short hash of the feature catalog (names, kinds, windows and SQL, in order): two
    models with the same version read the same snapshot columns with the same meaning."""
    text = "\n".join(f"{f.name}:{f.kind}:{f.window}:{f.sql}" for f in catalog(spec))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def feature_mismatch(recipe: Recipe, what: str) -> str | None:
    """Why `what` (a model) may not get the features it learnt from, or None: the feature
    version it was trained with differs from what this churnwatch computes for its catalog
    (a definition changed since). None too for a recipe that recorded no version."""
    now = feature_version(recipe.spec)
    if not recipe.feature_version or recipe.feature_version == now:
        return None
    return (
        f"{what} was trained with feature version {recipe.feature_version}; this churnwatch "
        f"computes version {now} for its catalog, so some features may not mean what the model "
        "learnt. Train it again (churnwatch train or retrain) to serve consistent scores."
    )


@dataclass(frozen=True)
class Recipe:
    definition: ChurnDefinition = ChurnDefinition()
    every_days: int = 7  # the evaluation schedule
    min_history_days: int = 14
    anchor: date | None = None  # the schedule's first cutoff on the training data
    train_every_days: int = 1
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    calibration: str = ""
    threshold_rule: str = "f1"
    threshold: float = 0.5
    seed: int = 0
    n_trials: int = 0
    features: tuple[str, ...] = ()
    feature_version: str = ""
    spec: FeatureSpec = FeatureSpec()  # which catalog the features come from

    @property
    def schedule(self) -> CutoffSchedule:
        return CutoffSchedule(every_days=self.every_days, min_history_days=self.min_history_days)

    def on_schedule(self, day: date) -> date:
        """The latest cutoff of the recipe's schedule at or before `day` (`day` itself when
        the recipe has no anchor)."""
        if self.anchor is None or day < self.anchor:
            return day
        return date.fromordinal(day.toordinal() - (day - self.anchor).days % self.every_days)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["anchor"] = self.anchor.isoformat() if self.anchor else None
        out["features"] = list(self.features)
        out["spec"] = self.spec.to_dict()
        return {"format": FORMAT, **out}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Recipe:
        data = dict(raw)
        data.pop("format", None)
        try:
            data["definition"] = ChurnDefinition(**data.get("definition", {}))
            anchor = data.get("anchor")
            data["anchor"] = date.fromisoformat(anchor) if anchor else None
            data["features"] = tuple(data.get("features", ()))
            data["spec"] = FeatureSpec.from_dict(data.get("spec"))  # none: eventsim's
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"expected a churnwatch recipe. Got {dict(raw)!r}: {exc}") from exc

    def to_params(self) -> dict[str, Any]:
        """The recipe as flat MLflow parameters (searchable in the UI)."""
        d = self.definition
        return {
            "recipe_definition": d.kind,
            "recipe_horizon_days": d.horizon_days,
            "recipe_inactivity_days": d.inactivity_days,
            "recipe_include_downgrade": d.include_downgrade,
            "recipe_every_days": self.every_days,
            "recipe_min_history_days": self.min_history_days,
            "recipe_anchor": self.anchor.isoformat() if self.anchor else "",
            "recipe_train_every_days": self.train_every_days,
            "recipe_feature_version": self.feature_version,
            "recipe_features": self.spec.kind,
        }

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Recipe:
        """A recipe from the parameters of a run logged before `recipe.json` existed."""
        return cls(
            definition=ChurnDefinition.from_run_params(params),
            every_days=int(params.get("every_days", 7)),
            min_history_days=int(params.get("min_history_days", 14)),
            train_every_days=int(params.get("train_every_days", 1)),
            model=params.get("model", ""),
            calibration=params.get("calibration", ""),
            threshold_rule=params.get("threshold_rule", "f1"),
            threshold=float(params.get("threshold", 0.5)),
            seed=int(params.get("seed", 0)),
            n_trials=int(params.get("n_trials", 0)),
        )

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str))
        return path

    def describe(self) -> str:
        d = self.definition
        what = (
            f"inactivity of {d.inactivity_days} days"
            if d.kind == "inactivity"
            else "cancellation" + (" or downgrade" if d.include_downgrade else "")
        )
        return (
            f"churn = {what} within {d.horizon_days} days; cutoffs every {self.every_days} days "
            f"after {self.min_history_days} days of history; {self.spec.describe()}"
        )
