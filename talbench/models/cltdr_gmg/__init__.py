"""CLTDR-GMG (Li et al., AAAI 2025): the GMG pyramid encoder and the CLTDR decoder (DCM, DRM, CLFF, RefineHead)."""
