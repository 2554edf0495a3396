"""Fitting and measuring the "not a digit" rule a model's predictions are checked with (`inference.acceptance` applies it)."""
