"""TAL-Net's networks (fig. 1 right, fig. 6): one network per feature map, and late fusion of two of them.

* :class:`TALNet`: SPN (:mod:`.spn`) and classifier (:mod:`.classifier`) on one feature map: a single stream
  (``rgb``, ``flow``) or early fusion (``both``: "we concatenate the two 1D feature maps in the feature
  dimension, and apply the same pipeline", sec. 4.3).
* :class:`LateFusionTALNet` (sec. 4.3, proposed): a distinct network per stream; "the element-wise average of
  the logits from the two networks" (anchor classification and regression) gives the proposals, SoI pooling
  runs on both maps with a distinct classifier each, whose class and regression logits are averaged.

The ``features`` arguments are dicts stream -> ``(D, T)`` so that both kinds are called alike.
"""

from __future__ import annotations

import torch
from torch import nn

from talbench.models import count_parameters
from talbench.models.talnet.classifier import ActionClassifier
from talbench.models.talnet.spn import SegmentProposalNetwork, units_per_paper_cell

PAPER_FEATURE_DIM = 1024  # I3D, per stream (sec. 5 "Features")
PAPER_NUM_CLASSES = 20  # THUMOS14


class TALNet(nn.Module):
    """One TAL-Net on the feature map of ``stream``."""

    def __init__(self, in_dim: int, num_classes: int, stream: str, *, scales, unit: int,
                 architecture: str = "multi_dilated", spn_context: bool = True, classifier_context: bool = True,
                 bins: int = 7, width: int = 256, dropout: float = 0.0, chunk: int = 256):
        super().__init__()
        self.streams = (stream,)
        self.spn = SegmentProposalNetwork(in_dim, scales, unit, architecture, spn_context, width)
        self.classifier = ActionClassifier(in_dim, num_classes, classifier_context, bins, width, dropout, chunk)

    def propose(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor logits ``(K, T, 2)`` and offsets ``(K, T, 2)``."""
        return self.spn(features[self.streams[0]])

    def classify(self, features: dict[str, torch.Tensor],
                 proposals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits ``(N, C + 1)`` and class-specific offsets ``(N, C, 2)`` of ``proposals`` ``(N, 2)``."""
        return self.classifier(features[self.streams[0]], proposals)


class LateFusionTALNet(nn.Module):
    """Sec. 4.3, fig. 6: the element-wise average of the networks' SPN and classifier logits."""

    def __init__(self, networks: dict[str, TALNet]):
        super().__init__()
        self.networks = nn.ModuleDict(networks)
        self.streams = tuple(s for net in networks.values() for s in net.streams)

    def propose(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return _average([net.propose(features) for net in self.networks.values()])

    def classify(self, features: dict[str, torch.Tensor],
                 proposals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _average([net.classify(features, proposals) for net in self.networks.values()])


def _average(outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([o[0] for o in outputs]).mean(0), torch.stack([o[1] for o in outputs]).mean(0)


def build_network(tc: dict, in_dim: int, num_classes: int, stream: str) -> TALNet:
    """The network of the ``talnet`` section ``tc`` on a ``stream`` feature map of ``in_dim`` channels."""
    model, grid = tc["model"], tc["grid"]
    return TALNet(in_dim, num_classes, stream, scales=model["scales"],
                  unit=units_per_paper_cell(grid["mode"], grid["cells_per_paper_cell"]),
                  architecture=model["architecture"], spn_context=model["spn_context"],
                  classifier_context=model["classifier_context"], bins=model["soi_bins"], width=model["width"],
                  dropout=model["dropout"], chunk=tc["test"]["soi_chunk"])


def parameter_counts(tc: dict, feature_dim: int = PAPER_FEATURE_DIM,
                     num_classes: int = PAPER_NUM_CLASSES) -> dict[str, int]:
    """Parameters of each output of a row: ``rgb`` / ``flow`` (one network on ``feature_dim`` channels),
    ``early`` (one on ``2 x feature_dim``), ``late`` (two single-stream networks), and the ``spn`` and
    ``classifier`` of one single-stream network."""
    with torch.device("meta"):
        single = build_network(tc, feature_dim, num_classes, "rgb")
        early = build_network(tc, 2 * feature_dim, num_classes, "both")
    one = count_parameters(single)
    return {"spn": count_parameters(single.spn), "classifier": count_parameters(single.classifier),
            "rgb": one, "flow": one, "early": count_parameters(early), "late": 2 * one}
