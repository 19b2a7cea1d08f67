"""The proposal-level detector of D-Net (AAAI 2022) that RefactorNet (CVPR 2022) builds on: label assignment and sampling, training, inference."""
