"""`mnist-cnn tune`: hyperparameter studies on Optuna (search spaces, storage, trials, reports)."""
