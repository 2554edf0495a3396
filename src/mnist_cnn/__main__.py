"""`python -m mnist_cnn` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
