"""Rendering a video's latent timeline into two-stream, I3D-like features (docs/synthetic.md, step 5).

For stream ``s`` and cell ``t`` (centre time ``tau_t``)::

    a_t  = latent activations (background mixture, context presence, soft phase weights)
    h_t^s = ((g^s * a_t) U^s + nu^s z_t^s) M^s + b^s + sigma^s eps_t^s
    x_t^s = softplus(h_t^s), stored as float32 on a grid of 2^-12

**The same bytes on every machine.** A BLAS matrix product sums in an order that depends on the CPU's kernel
(OpenBLAS picks one per CPU; ``OPENBLAS_CORETYPE`` changes it), so its last bits differ between machines. Every
product here is :func:`fixed_order_matmul`: float64, one elementwise multiply-add per inner index, in index
order; elementwise IEEE operations round the same everywhere. What is left to the CPU are the last bits of the
float64 transcendental functions (numpy has SIMD versions of exp / log / tanh per instruction set); rounding the
features to multiples of ``2^-12`` (:data:`GRID`, far below the noise level) absorbs those: a feature changes
only if its float64 value lies within a few 1e-16 of a grid midpoint (about one value in 10^11).

with ``z`` (L-dim latent nuisance, full rank) and ``eps`` (D-dim sensor noise) stationary AR(1)
processes of unit variance and coefficient ``noise_rho`` (adjacent I3D clips overlap by 12 of 16 frames), so features are non-negative and temporally
correlated like average-pooled I3D activations.  Phase and context edges are logistic ramps,
``w(tau) = sigma((tau - lo) / beta) - sigma((tau - hi) / beta)``, so boundaries are blurred.
"""

from __future__ import annotations

import numpy as np

from talbench.data.synthetic.config import SynthConfig
from talbench.data.synthetic.layout import VideoLayout
from talbench.data.synthetic.taxonomy import STREAMS, Taxonomy

GRID = 2.0**-12
"""Stored features are float32 multiples of GRID (see the module docstring)."""


def fixed_order_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float64, summed over the inner index in order with elementwise operations only (no BLAS):
    the same bits on every CPU."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros((a.shape[0], b.shape[1]))
    for k in range(a.shape[1]):
        out += a[:, k, None] * b[None, k, :]
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def soft_box(t: np.ndarray, lo: np.ndarray, hi: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """``(T, N)`` membership of times ``t`` in boxes ``[lo, hi)`` with logistic edges of ``scale`` seconds."""
    scale = np.asarray(scale, dtype=np.float64)
    return _sigmoid((t[:, None] - lo[None]) / scale) - _sigmoid((t[:, None] - hi[None]) / scale)


def soft_union(t: np.ndarray, lo: np.ndarray, hi: np.ndarray, scale: float) -> np.ndarray:
    """``(T,)`` membership of times ``t`` in the union of boxes ``[lo, hi)``: their soft memberships summed in a
    fixed order, capped at 1."""
    boxes = soft_box(t, lo, hi, scale)
    return np.minimum(fixed_order_matmul(boxes, np.ones((boxes.shape[1], 1)))[:, 0], 1.0)


def ar1(eta: np.ndarray, rho: float) -> np.ndarray:
    """Stationary unit-variance AR(1) along axis 0 driven by white ``eta``:
    ``x_0 = eta_0``, ``x_t = rho x_{t-1} + sqrt(1 - rho^2) eta_t``.

    Computed blockwise in closed form (``x_{t0+j} = rho^{j+1} x_{t0-1} + sum_k rho^{j-k} e_{t0+k}``) with a
    cumulative sum per block, so the only Python loop is over blocks of ~40 cells, not over cells."""
    if rho == 0.0:
        return eta.astype(np.float64)
    e = np.sqrt(1 - rho**2) * eta.astype(np.float64)
    e[0] = eta[0]
    block = 1 + int(np.log(1e4) / -np.log(rho))
    powers = rho ** np.arange(block, dtype=np.float64)
    out = np.empty_like(e)
    carry = np.zeros(e.shape[1:])
    for t0 in range(0, e.shape[0], block):
        p = powers[: min(block, e.shape[0] - t0)].reshape(-1, *([1] * (e.ndim - 1)))
        out[t0 : t0 + p.shape[0]] = np.cumsum(e[t0 : t0 + p.shape[0]] / p, axis=0) * p + p * rho * carry
        carry = out[t0 + p.shape[0] - 1]
    return out


def latent_activations(layout: VideoLayout, cfg: SynthConfig, taxonomy: Taxonomy, rng: np.random.Generator) -> np.ndarray:
    """``(T, A)`` activation of every dictionary atom at every cell (before stream gains)."""
    t = layout.centers(cfg)
    act = np.zeros((layout.num_cells, taxonomy.num_atoms))

    # Class-agnostic background: a per-video mixture of background atoms (unit norm weights).
    weights = rng.dirichlet(np.ones(taxonomy.background_atoms.size))
    act[:, taxonomy.background_atoms] = weights / np.linalg.norm(weights)

    # Context of the video's setting: present on the soft union of its regions (instances with margins, coupling).
    presence = soft_union(t, layout.region_start, layout.region_end, cfg.context.blur_s)
    share = cfg.context.class_share
    act[:, taxonomy.scene_atom[taxonomy.family_of_class[layout.setting]]] = np.sqrt(1 - share) * presence
    if not cfg.context.within_instances:  # the class context is hidden while an instance is on
        presence = presence * (1 - soft_union(t, layout.start, layout.end, cfg.context.blur_s))
    act[:, taxonomy.context_atom[layout.setting]] = np.sqrt(share) * presence

    # Action phases: soft membership of each of the 4 phases of each instance, scaled by its gain.
    p = cfg.phases
    scale = p.blur_s + p.blur_rel * (layout.end - layout.start)
    lo, hi = layout.bounds[:, :4], layout.bounds[:, 1:]
    member = soft_box(t, lo.ravel(), hi.ravel(), np.repeat(scale, 4))  # (T, J*4), instance-major
    family = taxonomy.family_of_class[layout.label]
    atoms = np.stack(
        [taxonomy.onset_atom[family], taxonomy.body_atom[family], taxonomy.key_atom[layout.label],
         taxonomy.offset_atom[family]], axis=1,
    ).ravel()
    to_atoms = np.zeros((atoms.size, taxonomy.num_atoms))
    to_atoms[np.arange(atoms.size), atoms] = np.repeat(layout.gain, 4)
    act += fixed_order_matmul(member, to_atoms)
    return act


def render_features(
    layout: VideoLayout, cfg: SynthConfig, taxonomy: Taxonomy, rng: np.random.Generator
) -> np.ndarray:
    """float32 ``(T, 2 D)`` features, RGB then Flow, as the ActionFormer THUMOS14 ``.npy`` files."""
    act = latent_activations(layout, cfg, taxonomy, rng)
    streams = []
    for stream in STREAMS:
        gains = getattr(cfg.streams, stream)
        # Gains in the order of taxonomy.GROUPS: background, scene, class context, 4 action phases.
        per_group = np.array([gains.background, gains.context, gains.context] + [gains.action] * 4)
        nuisance = ar1(rng.standard_normal((layout.num_cells, cfg.latent_dim)), cfg.noise_rho)
        noise = ar1(rng.standard_normal((layout.num_cells, cfg.feature_dim)), cfg.noise_rho)
        latent = fixed_order_matmul(act * per_group[taxonomy.atom_group], taxonomy.atoms[stream])
        latent += gains.nuisance * nuisance
        pre = fixed_order_matmul(latent, taxonomy.mixing[stream]) + taxonomy.bias[stream] + gains.noise * noise
        streams.append(np.logaddexp(0.0, pre))
    return (np.round(np.concatenate(streams, axis=1) / GRID) * GRID).astype(np.float32)
