"""TAL-Net (Chao et al., CVPR 2018, "Rethinking the Faster R-CNN Architecture for Temporal Action Localization").

Fig. 1 (right), sec. 4 and "Implementation Details", for one video's 1-D feature map ``(D, T)``::

    features -> 1x1 conv to 256 -> Segment Proposal Network (spn.py, sec. 4.1-4.2, figs. 2-4):
                    K = 9 towers, one per anchor scale: max-pool -> dilated conv k=3 -> dilated conv k=3
                    -> two parallel 1x1 convs: anchor classification (2 logits), boundary regression (2)
             -> proposals: decoding, NMS 0.7, top 300 (talbench.runners.talnet.inference)
             -> SoI pooling of each proposal on the feature map (classifier.py, sec. 4.2, fig. 5; with context
                the proposal extended by s/2 on each side) -> 1x1 conv to 256 -> FC 256 -> final FC:
                C + 1 class logits and C x 2 class-specific boundary offsets
    late fusion (network.py, sec. 4.3, fig. 6): one network per stream, SPN logits and classifier logits
    averaged element-wise; early fusion: one network on the concatenated streams.

All convolutional and fully-connected layers have 256 filters ("Implementation Details", ``width``); the
losses of supplementary eq. 1 are in losses.py. What the paper leaves open, and the choices made (as the
Faster R-CNN reference / the TF Object Detection API that [P] is built on), is in each module's docstring and
in docs/talnet.md.
"""
