"""talbench: a reproducibility benchmark suite for Temporal Action Localization papers."""

__version__ = "0.1.0"
