"""prunelab: measure what magnitude pruning costs and buys for small CNNs."""

__version__ = "0.1.0"
