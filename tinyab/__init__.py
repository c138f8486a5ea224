"""tinyab: honest A/B comparisons for image classifiers trained from scratch."""

__version__ = "0.1.0"
