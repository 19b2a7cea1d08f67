"""Training / inference helpers of the detectors that sit outside the models."""
