"""Runner-side parts of the one-stage detectors (label assignment)."""
