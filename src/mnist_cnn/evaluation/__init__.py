"""Stages 5-6: metrics on the test split, plots, the run report, and pictures of what a model sees."""
