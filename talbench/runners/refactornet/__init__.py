"""RefactorNet (CVPR 2022): its benchmark rows (tables 1-5)."""
