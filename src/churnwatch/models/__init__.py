"""Models: candidates, out-of-time training, calibration, evaluation."""
