"""Stage 0-1: datasets. The registry, where copies are found, fetching and verifying, IDX and custom formats, dataset cards, and the arrays a model trains on. NumPy only."""
