"""The models as ``torch.nn.Module`` s and their losses, one module per paper plus shared blocks (``blocks/``).

Training, inference and label assignment live in :mod:`talbench.runners`; nothing here reads params.yaml except
the ``build_*`` constructors, which take the resolved configuration of a row.
"""

from __future__ import annotations


def count_parameters(module) -> int:
    """Number of parameters of a ``torch.nn.Module`` (the papers' "#params")."""
    return sum(p.numel() for p in module.parameters())
