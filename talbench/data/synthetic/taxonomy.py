"""Classes, families and the per-stream atoms of latent factors.

A family (think "track and field jumps") shares a scene context ``S_f`` and the motion patterns of its
onset ``O_f``, preparatory body ``B_f`` and offset ``E_f``; each class ``c`` of the family differs by a short
key phase ``K_c`` (the take-off) and by a class-specific context ``Q_c`` (the pit, the bar).  Key patterns of
one family are correlated, ``K_c = sqrt(s) K̄_f + sqrt(1 - s) K'_c`` with ``s = key_family_similarity``, so
that classes of one family are confusable.  Background (class-agnostic) uses ``background_atoms`` atoms.
Atoms live in a latent space of ``latent_dim`` dimensions (entries N(0, 1)), ``U^s`` per stream; each stream
mixes that space into its ``D`` feature dimensions with its own random matrix ``M^s`` (entries N(0, 1/L)), so
the difficulty does not grow easier with ``D`` (docs/synthetic.md). Everything is float64; the features
module multiplies them in a fixed order (no BLAS), so the data are the same bytes on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talbench.data.synthetic.config import SynthConfig

PHASES = ("background", "onset", "body", "key", "offset")
"""Phase codes in the latent sidecar: position in this tuple (0 = no action)."""

STREAMS = ("rgb", "flow")
GROUPS = ("background", "scene", "class_context", "onset", "body", "key", "offset")


@dataclass(frozen=True)
class Taxonomy:
    """Class names, class -> family map, atom index tables and per-stream atoms, mixing matrices and biases."""

    classes: list[str]
    family_of_class: np.ndarray  # (C,) int
    atom_group: np.ndarray  # (A,) int index into GROUPS
    scene_atom: np.ndarray  # (F,) atom of each family's scene context
    context_atom: np.ndarray  # (C,) atom of each class's own context
    onset_atom: np.ndarray  # (F,)
    body_atom: np.ndarray  # (F,)
    key_atom: np.ndarray  # (C,)
    offset_atom: np.ndarray  # (F,)
    background_atoms: np.ndarray  # (G,)
    atoms: dict[str, np.ndarray]  # stream -> (A, L) float64, U^s
    mixing: dict[str, np.ndarray]  # stream -> (L, D) float64, M^s
    bias: dict[str, np.ndarray]  # stream -> (D,) float64

    @property
    def num_atoms(self) -> int:
        return int(self.atom_group.size)


def _class_names(family_of_class: np.ndarray) -> list[str]:
    names, seen = [], {}
    for family in family_of_class.tolist():
        seen[family] = seen.get(family, 0) + 1
        names.append(f"family{family}_action{seen[family] - 1}")
    return names


def build_taxonomy(cfg: SynthConfig, rng: np.random.Generator) -> Taxonomy:
    """Draw the atoms, mixing matrices and biases of both streams from ``rng`` (deterministic for a seed)."""
    num_c, num_f, num_g = cfg.num_classes, cfg.num_families, cfg.background_atoms
    family_of_class = np.concatenate(
        [np.full(len(part), f) for f, part in enumerate(np.array_split(np.arange(num_c), num_f))]
    )
    sizes = {
        "background": num_g, "scene": num_f, "class_context": num_c,
        "onset": num_f, "body": num_f, "key": num_c, "offset": num_f,
    }
    starts = np.cumsum([0, *sizes.values()])
    index = {name: np.arange(starts[i], starts[i + 1]) for i, name in enumerate(sizes)}
    atom_group = np.concatenate([np.full(n, GROUPS.index(name)) for name, n in sizes.items()])

    dim, latent, share = cfg.feature_dim, cfg.latent_dim, cfg.key_family_similarity
    stream_atoms, mixing, bias = {}, {}, {}
    for stream in STREAMS:
        atoms = rng.standard_normal((atom_group.size, latent))
        family_key = rng.standard_normal((num_f, latent))
        atoms[index["key"]] = np.sqrt(share) * family_key[family_of_class] + np.sqrt(1 - share) * atoms[index["key"]]
        stream_atoms[stream] = atoms
        mixing[stream] = rng.standard_normal((latent, dim)) / np.sqrt(latent)
        bias[stream] = cfg.bias + 0.5 * rng.standard_normal(dim)

    return Taxonomy(
        classes=_class_names(family_of_class),
        family_of_class=family_of_class,
        atom_group=atom_group,
        scene_atom=index["scene"],
        context_atom=index["class_context"],
        onset_atom=index["onset"],
        body_atom=index["body"],
        key_atom=index["key"],
        offset_atom=index["offset"],
        background_atoms=index["background"],
        atoms=stream_atoms,
        mixing=mixing,
        bias=bias,
    )
