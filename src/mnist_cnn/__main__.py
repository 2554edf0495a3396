"""`python -m mnist_cnn` runs the CLI."""

from .cli.main import entry

entry()
