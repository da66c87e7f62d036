"""matplotlib, set once to draw to files (the Agg backend) for every report and plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  # after the backend is chosen

__all__ = ["plt"]
