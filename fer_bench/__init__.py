"""fer-bench: facial expression recognition under label noise and class imbalance."""

__version__ = "0.1.0"
