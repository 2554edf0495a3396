"""The `mnist-cnn` command: parse, call the library, print. Nothing imports this package."""
