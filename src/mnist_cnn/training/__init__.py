"""Stages 2-5: architectures, settings resolved from recipes, augmentation, the training loop and its callbacks."""
