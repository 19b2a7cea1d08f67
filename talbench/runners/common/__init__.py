"""What the model families share: the outcome contract, seeding, checkpoints, snippets, the video classifier."""
