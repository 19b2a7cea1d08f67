"""Shared parts of the one-stage feature-pyramid detectors (ActionFormer, TriDet, TemporalMaxer, CLTDR-GMG):
projection, pyramid encoders, neck, heads, Trident decoding, losses, and the encoder + neck + decoder composition."""
