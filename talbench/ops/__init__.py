"""Tensor and array operations shared by the models' post-processing (NMS)."""
