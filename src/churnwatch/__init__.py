"""churnwatch: predict, explain and monitor subscriber churn from streaming activity logs."""

__version__ = "0.1.0"
