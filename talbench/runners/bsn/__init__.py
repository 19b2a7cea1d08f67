"""BSN (Lin et al., ECCV 2018): the proposal generator of D-Net and RefactorNet, trained and run as a DVC stage."""
