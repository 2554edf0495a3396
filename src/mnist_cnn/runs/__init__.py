"""A run: its settings (`TrainConfig`) and the folder that records it (`Run`), the one owner of a run's file names."""
