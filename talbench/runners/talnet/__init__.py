"""TAL-Net (Chao et al., CVPR 2018): grid and anchors, label assignment, training, inference and the
benchmark runner (``talbench.runners.talnet.runner:run_row``); the network is :mod:`talbench.models.talnet`."""
