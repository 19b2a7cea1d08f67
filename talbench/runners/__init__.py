"""Model families: each runs one benchmark row with one seed (``talbench.runners.families.run_row``).

``common/`` holds what the families share (the outcome contract, row execution and seeding, checkpoints,
snippets, the video-level classifier), ``proposal_detector/`` the proposal-level detector that D-Net and
RefactorNet build on, ``one_stage/`` what the one-stage feature-pyramid detectors share (label assignment),
``bsn/`` the BSN proposal generator, and one package per paper (``dnet/``, ``refactornet/``).
"""
