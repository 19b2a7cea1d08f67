"""1-D non-maximum suppression: hard NMS and Soft-NMS (Gaussian, linear), per class or class-agnostic.

Soft-NMS (Bodla et al., ICCV'17, Eq. 3 linear and the Gaussian rule) as ActionFormer / BSN apply it to
segments: repeatedly select the highest-scoring remaining segment M and rescore every other remaining
segment b_i of its group:

* hard:     remove b_i if tIoU(M, b_i) > iou_threshold
* linear:   s_i <- s_i * (1 - tIoU(M, b_i))  if tIoU(M, b_i) >= iou_threshold
* gaussian: s_i <- s_i * exp(-tIoU(M, b_i)^2 / sigma)

Segments scoring below ``min_score`` at the start take no part; segments whose score falls below it are
dropped; at most ``top_k`` segments are selected per group. Score ties are broken by input order: of
equal current scores, the segment that comes first in the input is selected first, and the kept
segments come out by descending (rescored) score, ties by input order. Segment bounds must be finite;
scores of -inf (or NaN) never take part.

The result is that of the one-selection-at-a-time loop (``plain_loop_nms`` in tests/helpers/nms_reference.py)
bit for bit: every rescored score is the product of the same factors, computed by the same
floating-point operations (tIoU as :mod:`talbench.eval.tiou`, ``exp(-tIoU^2 / sigma)``, ``1 - tIoU``),
multiplied in the same order.

Algorithm. All groups (videos, classes) advance together, in rounds:

1. Candidates: the ``_CANDIDATES`` (16) best alive segments of every group, by score then input order.
   Scores sit group by group (input order inside) in blocks and superblocks whose maxima are kept up to
   date; one sort of the superblock maxima (as uint64 (group, score) codes) gives a lower bound of every
   group's k-th best score, so only the segments reaching it are gathered and sorted.
2. Selection: the longest prefix of a group's candidates in which no candidate is changed by an
   earlier one (tIoU > 0 for Gaussian, >= iou_threshold for linear, > iou_threshold for hard; a zero
   score stays zero) is exactly what the one-at-a-time loop selects next, with unchanged scores, so the
   whole prefix is selected at once (about 10 segments per round on realistic candidates; 1 where the
   best candidates overlap each other).
3. Rescoring: only segments overlapping a selected one change. The positive-length segments of a group
   are binned by length (classes of 4x; classes under ``_MIN_BIN`` segments merged) and sorted by
   start, so those of a bin that can overlap [s, e] are one ``searchsorted`` range (start in
   [s - longest of the bin, e]). Their factors are multiplied in selection order (``np.multiply.at``);
   linear and hard skip the bins whose lengths rule out tIoU >= iou_threshold. (Negative scores, which
   a factor raises, get one selection per group and round.)
4. Compaction: when half the slots are dead or half the groups done, the state is rebuilt from the
   alive segments of the unfinished groups (no re-sort: orders are kept).

Cost: O(N log N) to set up; then rounds, about (most selections in a group) / (mean prefix) of them,
each O(superblocks + candidates + window segments) vectorized: the work per selected segment is the
segments of its windows (about 2x those it overlaps, dead ones included) instead of its whole group,
nothing is re-sorted per selection, and the ~100 numpy calls of a round are shared by all groups, which
is where most of the speed comes from: a single group gains 2-4x over the plain loop, 100k segments in
many groups 5-15x (benchmarks/perf/nms_speed.py). Hard NMS of groups of typical size <= 150 runs a
simpler loop (one selection per group and step) whose setup is cheaper.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from talbench.eval.tiou import segment_tiou, tiou_from_parts

METHODS = ("hard", "linear", "gaussian")

_CANDIDATES = 16  # candidates per group and round (the most selections per group and round)
_SUPERBLOCKS = 64  # superblocks in a group of typical size
_CLASS_LOG2 = 1  # window bins: segment lengths within 2^_CLASS_LOG2 binary orders (4x), ...
_MIN_BIN = 64  # ... a class of fewer segments joining the (longer) bin before it
_RATIO_SLACK = 1e-6  # relative margin of the length-ratio test (tIoU <= shorter / longer length)
_COMPACT = 2.0  # every _COMPACT_EVERY rounds, compact states of over _COMPACT_MIN slots when fewer
_COMPACT_EVERY = 8  # than 1 / _COMPACT of the slots are alive or fewer than half the groups active
_COMPACT_MIN = 4096
_LEXSORT_MAX = 1024  # candidates up to this many: sorted by np.lexsort, more: by a stable argsort
_HARD_LOOP_MAX_GROUP = 150  # hard NMS of groups up to this typical size: _hard_nms

_NEG = -np.inf  # score of dead slots
_LOWEST = np.finfo(np.float64).min  # lowest finite score
_ALL_BITS, _SIGN_BIT = np.uint64(2**64 - 1), np.uint64(2**63)


def _check(method: str, iou_threshold: float, sigma: float) -> None:
    if method not in METHODS:
        raise ValueError(f"NMS method must be one of {METHODS}, got '{method}'")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if method == "gaussian" and sigma <= 0:
        raise ValueError(f"Soft-NMS sigma must be positive, got {sigma}")


def batched_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    method: str = "hard",
    iou_threshold: float = 0.5,
    sigma: float = 0.5,
    min_score: float = 0.0,
    top_k: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NMS / Soft-NMS of ``segments`` ``(N, 2)`` with ``scores`` ``(N,)`` inside each group (``groups``
    ``(N,)`` of any labels; None = one group, i.e. class-agnostic).

    Returns the kept indices into the input and their (rescored) scores, by descending score (ties by
    input order). See the module docstring for the algorithm and its cost.
    """
    _check(method, iou_threshold, sigma)
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = scores.size
    if segments.shape[0] != n:
        raise ValueError(f"segments {segments.shape} and scores {scores.shape} differ in length")
    codes = np.zeros(n, np.int64) if groups is None else pd.factorize(np.asarray(groups))[0].astype(np.int64)
    limit = n if top_k is None else int(top_k)
    min_score = max(float(min_score), _LOWEST)  # (a score of -inf never takes part)
    taking_part = scores >= min_score
    if not taking_part.any() or limit <= 0:
        return np.zeros(0, np.int64), np.zeros(0)
    if not np.isfinite(segments[taking_part]).all():
        raise ValueError("NMS needs finite segment bounds")
    if method == "hard" and _typical_group_size(codes[taking_part]) <= _HARD_LOOP_MAX_GROUP:
        return _hard_nms(segments, scores, codes, iou_threshold, min_score, limit)
    return _select(segments, scores, codes, method, iou_threshold, sigma, min_score, limit)


def _typical_group_size(codes: np.ndarray) -> float:
    """Size of the group of the average segment (sum of squared group sizes / number of segments)."""
    return float(np.square(np.bincount(codes), dtype=np.float64).sum()) / max(codes.size, 1)


def _hard_nms(segments, scores, codes, iou_threshold, min_score, limit):
    """Hard NMS: each loop step keeps the best remaining segment of every group (scores never change, so
    one lexsort up front orders each group) and removes the segments it overlaps above the threshold."""
    n = scores.size
    n_groups = int(codes.max()) + 1
    order = np.lexsort((np.arange(n), -scores, codes))  # groups contiguous, score descending, stable
    seg, score, group = segments[order], scores[order], codes[order]

    kept_pos = []
    n_selected = np.zeros(n_groups, np.int64)
    remaining = np.flatnonzero(score >= min_score)
    while remaining.size and limit > 0:
        rem_group = group[remaining]
        first = np.ones(remaining.size, bool)
        first[1:] = rem_group[1:] != rem_group[:-1]
        top = remaining[first]
        kept_pos.append(top)
        n_selected[group[top]] += 1

        top_of_group = np.full(n_groups, -1, np.int64)
        top_of_group[group[top]] = top
        partner = top_of_group[rem_group]
        others = remaining != partner
        remaining, partner = remaining[others], partner[others]
        iou = segment_tiou(seg[remaining, 0], seg[remaining, 1], seg[partner, 0], seg[partner, 1])
        keep = iou <= iou_threshold
        keep &= n_selected[group[remaining]] < limit
        remaining = remaining[keep]

    if not kept_pos:
        return np.zeros(0, np.int64), np.zeros(0)
    pos = np.concatenate(kept_pos)
    final = score[pos]
    by_score = np.lexsort((order[pos], -final))
    return order[pos][by_score], final[by_score]


def _ordinal(values: np.ndarray) -> np.ndarray:
    """uint64 codes in the order of the float64 ``values`` (not NaN; -0.0 and 0.0 share a code)."""
    u = (values + 0.0).view(np.uint64)
    return u ^ ((u >> np.uint64(63)) * _ALL_BITS | _SIGN_BIT)


def _score_of(codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_ordinal`; for a code with low bits cleared, the lowest score sharing them."""
    return (codes ^ (((~codes) >> np.uint64(63)) * _ALL_BITS | _SIGN_BIT)).view(np.float64)


_LOWEST_CODE = _ordinal(np.array([_LOWEST]))[0]


def _ragged_arange(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(first[i], first[i] + counts[i])`` (``counts >= 0``)."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if ends.size else 0
    return np.repeat(first - (ends - counts), counts) + np.arange(total)


class _Layout:
    """State of the rounds: the alive segments of the unfinished groups.

    Scores ``s`` (with ``idx``, ``st``, ``en``, ``len``): group after group, input order inside a group,
    every group padded with -inf to whole superblocks of ``2^sshift`` blocks of ``2^shift`` slots (sizes
    from the typical group size), then one all--inf superblock. ``bmax`` / ``sbmax``: block / superblock
    maxima. Windows: the positive-length segments of every (group, length class) bin sorted by start
    (ties: input order), with start, end and length in that order, under the float key
    ``bin * stride + start`` (``stride`` >= 8x every |bound| and length: bins never interleave, and the
    key is monotone in the start within a bin).
    """

    def __init__(self, group, elems, scores, st, en, ln, w_elem, w_bin, bins, gcode, stride):
        # group: local group (0..G-1, ascending, every one present) of the segments, in layout order;
        # w_elem / w_bin: segment number and bin of the window entries, in window order; bins: (local
        # group, shortest, longest length) of every bin, by group; gcode: group code of local groups
        n = group.size
        new_group = np.ones(n, bool)
        np.not_equal(group[1:], group[:-1], out=new_group[1:])
        first = np.flatnonzero(new_group)
        count = np.diff(first, append=n)
        n_groups = first.size
        self.gcode = gcode
        typical = float(np.square(count, dtype=np.float64).sum()) / n
        self.shift = shift = int(np.clip(np.round(np.log2(typical / _CANDIDATES) / 2), 0, 6))
        self.sshift = sshift = int(np.clip(np.round(np.log2(typical / _SUPERBLOCKS)) - shift, 0, 6))
        unit = 1 << (shift + sshift)
        padded = (count + unit - 1) // unit * unit
        offset = np.cumsum(padded) - padded
        self.size = size = int(padded.sum()) + unit
        pos = np.repeat(offset - first, count) + np.arange(n)
        self.idx = np.full(size, -1, np.int64)
        self.idx[pos] = elems
        self.s = np.full(size, _NEG)
        self.s[pos] = scores
        self.st, self.en, self.len = np.zeros(size), np.zeros(size), np.zeros(size)
        self.st[pos], self.en[pos], self.len[pos] = st, en, ln
        self.lo_base = self.st - 4.0 * np.spacing(np.abs(self.st))  # window starts err on the low side
        self.s2 = self.s.reshape(size >> shift, 1 << shift)
        self.bmax = self.s2.max(axis=1)
        self.b2 = self.bmax.reshape(size >> (shift + sshift), 1 << sshift)
        self.sbmax = self.b2.max(axis=1)
        self.block_group = np.repeat(np.arange(n_groups + 1), np.append(padded, unit) >> shift)
        self.gsb0 = offset >> (shift + sshift)  # first superblock of every group
        self.gnsb = padded >> (shift + sshift)
        # ranking keys (uint64): the group in the top code_shift bits, the score's order code below
        self.code_shift = np.uint64(int(n_groups).bit_length())
        self.g_key = np.arange(n_groups + 1, dtype=np.uint64) << (np.uint64(64) - self.code_shift)
        self.sb_key = self.g_key[self.block_group[:: 1 << sshift]]

        self.w_bin, self.bins, self.stride = w_bin, bins, stride
        self.wpos = pos[w_elem]
        self.wst, self.wen, self.wlen = st[w_elem], en[w_elem], ln[w_elem]
        self.wkey = w_bin * stride + self.wst
        self.bin_short = bins[:, 1] * (1.0 - _RATIO_SLACK)
        self.bin_reach = bins[:, 2] * (1.0 + _RATIO_SLACK)
        bin_group = bins[:, 0].astype(np.int64)
        self.gbin0 = np.searchsorted(bin_group, np.arange(n_groups))
        self.gbin_n = np.searchsorted(bin_group, np.arange(n_groups), side="right") - self.gbin0

    @classmethod
    def build(cls, elems, scores, codes, start, end):
        """State of the segments ``elems`` (ascending input indices) with ``scores``."""
        code = codes[elems]
        o = np.argsort(code, kind="stable")
        elems, code, scores = elems[o], code[o], scores[o]
        new_group = np.ones(code.size, bool)
        np.not_equal(code[1:], code[:-1], out=new_group[1:])
        gcode, group = code[new_group], np.cumsum(new_group) - 1
        st, en = start[elems], end[elems]
        ln = en - st
        pw = np.flatnonzero(ln > 0)  # zero-length segments overlap nothing: never rescored, never rescore
        # window bins: the length classes of a group, longest first; a class of fewer than _MIN_BIN
        # segments joins the bin before it (a window query costs about as much as a few segments in it)
        cls_ = np.frexp(ln[pw])[1] >> _CLASS_LOG2
        while (int(cls_.max(initial=0)) - int(cls_.min(initial=0)) + 1) * gcode.size > 4 * code.size + 1024:
            cls_ >>= 1  # (lengths over very many orders of magnitude: wider classes)
        top = int(cls_.max(initial=0))
        n_cls = top - int(cls_.min(initial=0)) + 1
        cell = group[pw] * n_cls + (top - cls_)
        table = np.bincount(cell, minlength=gcode.size * n_cls).reshape(gcode.size, n_cls)
        present = table > 0
        cell_group = np.nonzero(present)[0]
        new_bin = table[present] >= _MIN_BIN
        new_bin[np.flatnonzero(np.diff(cell_group, prepend=-1))] = True
        bin_of_cell = np.zeros(table.size, np.int64)
        bin_of_cell[present.ravel()] = np.cumsum(new_bin) - 1
        w_bin = bin_of_cell[cell]
        bound = max(np.abs(st).max(), np.abs(en).max(), ln.max())
        stride = 2.0 ** np.ceil(np.log2(8.0 * bound * (1.0 + _RATIO_SLACK) + 1.0))
        if not np.isfinite(stride * (new_bin.sum() + 1.0)):
            raise ValueError("NMS: segment bounds too large")
        ow = np.argsort(w_bin * stride + st[pw], kind="stable")  # the window keys, ties by input order
        w_elem, w_bin = pw[ow], w_bin[ow]
        bin_first = np.flatnonzero(np.diff(w_bin, prepend=-1))
        bins = np.zeros((bin_first.size, 3))
        if w_elem.size:
            bins[:, 0] = group[w_elem[bin_first]]
            bins[:, 1] = np.minimum.reduceat(ln[w_elem], bin_first)
            bins[:, 2] = np.maximum.reduceat(ln[w_elem], bin_first)
        return cls(group, elems, scores, st, en, ln, w_elem, w_bin, bins, gcode, stride)

    def compact(self, keep_group: np.ndarray) -> _Layout | None:
        """State of the alive segments of the groups where ``keep_group`` (by local group), same orders
        (bins keep their reach: an upper bound still); None if there are none."""
        pos = np.flatnonzero(self.s > _NEG)
        old_group = self.block_group[pos >> self.shift]
        kept = keep_group[old_group]
        pos, old_group = pos[kept], old_group[kept]
        if pos.size == 0:
            return None
        keep_group = np.zeros(self.gcode.size, bool)  # (groups without alive segments go)
        keep_group[old_group] = True
        new_of_group = np.cumsum(keep_group) - 1
        number = np.full(self.size, -1, np.int64)
        number[pos] = np.arange(pos.size)
        w_elem = number[self.wpos]
        alive = w_elem >= 0
        keep_bin = keep_group[self.bins[:, 0].astype(np.int64)]
        bins = self.bins[keep_bin]
        bins[:, 0] = new_of_group[bins[:, 0].astype(np.int64)]
        return _Layout(new_of_group[old_group], self.idx[pos], self.s[pos], self.st[pos], self.en[pos],
                       self.len[pos], w_elem[alive], (np.cumsum(keep_bin) - 1)[self.w_bin[alive]], bins,
                       self.gcode[keep_group], self.stride)


def _select(segments, scores, codes, method, iou_threshold, sigma, min_score, limit):
    """NMS / Soft-NMS of every group at once, by rounds of several selections (module docstring)."""
    cand = np.flatnonzero(scores >= min_score)
    lay = _Layout.build(cand, scores[cand], codes, segments[:, 0], segments[:, 1])
    capped = limit < cand.size
    # a segment rescored by several selections of a round is dropped after its last factor instead of
    # the first below min_score: the same while scores are >= 0 (factors in [0, 1] never raise them);
    # a negative score rises under a factor: then one selection per group and round, and the maxima of
    # every block with a rescored segment are recomputed
    rising = method != "hard" and scores[cand].min() < 0
    n_cand = 1 if rising else _CANDIDATES
    ratio = iou_threshold * (1.0 - _RATIO_SLACK) if method != "gaussian" else 0.0
    n_sel = np.zeros(lay.gcode.size, np.int64)
    kept_idx, kept_score = [], []
    rounds = 0
    while True:
        # 1. candidates: the segments of a group scoring at least a lower bound of its k-th best score
        # (its k-th best superblock maximum, or its k-th best (group, score code) key's lowest score),
        # sorted by score then input order; the first k are its k best
        active = np.flatnonzero(np.maximum.reduceat(lay.sbmax, lay.gsb0) > _NEG)
        if active.size == 0:
            break
        floor = np.full(lay.gcode.size + 1, np.inf)
        floor[active] = _LOWEST  # (groups of fewer superblocks: every alive segment)
        many = active[lay.gnsb[active] >= n_cand]
        if many.size:
            key = np.sort(lay.sb_key | (_ordinal(lay.sbmax) >> lay.code_shift))
            key = key[lay.gsb0[many] + lay.gnsb[many] - n_cand]
            floor[many] = _score_of(np.maximum(key << lay.code_shift, _LOWEST_CODE))
        cb = np.flatnonzero(lay.bmax >= floor[lay.block_group])
        vals = lay.s2[cb]
        cb_group = lay.block_group[cb]
        i, j = np.nonzero(vals >= floor[cb_group][:, None])
        cpos = (cb[i] << lay.shift) + j  # ascending
        cgroup = cb_group[i]
        cval = vals[i, j]
        if cpos.size <= _LEXSORT_MAX:
            o = np.lexsort((cpos, -cval, cgroup))
            cpos, cgroup = cpos[o], cgroup[o]
        else:  # stable sort by (group, code of the negated score); nearly equal scores sharing a code
            # may come out of order: then the lexsort
            o = np.argsort(lay.g_key[cgroup] | (~_ordinal(cval) >> lay.code_shift), kind="stable")
            cpos, cgroup, cval = cpos[o], cgroup[o], cval[o]
            if np.any((cval[1:] > cval[:-1]) & (cgroup[1:] == cgroup[:-1])):
                o = np.lexsort((cpos, -cval, cgroup))
                cpos, cgroup = cpos[o], cgroup[o]
        rank = np.arange(cpos.size) - np.searchsorted(cgroup, cgroup)
        keep = rank < n_cand
        k = int(rank[keep].max()) + 1
        cand_pos = np.full((active.size, k), lay.size - 1)  # padding: a slot of the -inf superblock
        cand_pos[np.searchsorted(active, cgroup[keep]), rank[keep]] = cpos[keep]

        # 2. selection: the longest prefix of candidates that no earlier candidate changes, which the
        # one-at-a-time loop selects next, with the scores they have
        ranks = np.arange(k)
        if k > 1:
            cs, ce, cl = lay.st[cand_pos], lay.en[cand_pos], lay.len[cand_pos]
            inter = np.minimum(ce[:, :, None], ce[:, None, :]) - np.maximum(cs[:, :, None], cs[:, None, :])
            if method == "gaussian":
                changes = inter > 0
            else:
                with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 between zero-length segments
                    iou = inter / ((cl[:, None, :] + cl[:, :, None]) - inter)
                changes = (inter > 0) & ((iou > iou_threshold) if method == "hard" else (iou >= iou_threshold))
            changes &= ranks[:, None] > ranks[None, :]  # [a, b]: the earlier candidate b changes a
            cval = lay.s[cand_pos]
            if method != "hard":
                changes &= (cval != 0.0)[:, :, None]  # a factor leaves a zero score as it is
            stop = changes.any(axis=2) | (cval == _NEG)
            n_take = np.where(stop.any(axis=1), stop.argmax(axis=1), k)
        else:
            n_take = np.ones(active.size, np.int64)
        if capped:
            n_take = np.minimum(n_take, limit - n_sel[active])
            n_sel[active] += n_take
        m = cand_pos[ranks < n_take[:, None]]  # group by group, in selection order
        m_group = np.repeat(active, n_take)
        kept_idx.append(lay.idx[m])
        kept_score.append(lay.s[m])
        lay.s[m] = _NEG
        redo = [m >> lay.shift]  # blocks whose maximum may have decreased
        if capped:
            live = n_sel[m_group] < limit
            m, m_group = m[live], m_group[live]

        # 3. rescoring (hard: removal) of the segments the selected ones overlap, in selection order:
        # window queries (selected, bin), without the bins whose lengths rule out tIoU >= threshold
        nq = lay.gbin_n[m_group] * (lay.len[m] > 0)  # (a zero-length segment rescores nothing)
        qm = np.repeat(m, nq)
        qbin = _ragged_arange(lay.gbin0[m_group], nq)
        if ratio > 0:
            lm = lay.len[qm]
            fit = (lay.bin_reach[qbin] >= ratio * lm) & (lay.bin_short[qbin] * ratio <= lm)
            qm, qbin = qm[fit], qbin[fit]
        qkey = qbin * lay.stride
        lo = np.searchsorted(lay.wkey, qkey + (lay.lo_base[qm] - lay.bin_reach[qbin]))
        cnt = np.searchsorted(lay.wkey, qkey + lay.en[qm], side="right") - lo
        w = _ragged_arange(lo, cnt)
        pm = np.repeat(qm, cnt)
        inter = np.minimum(lay.wen[w], lay.en[pm]) - np.maximum(lay.wst[w], lay.st[pm])
        over = np.flatnonzero(inter > 0.0)
        w, pm, inter = w[over], pm[over], inter[over]
        p = lay.wpos[w]
        old = lay.s[p]
        hit = np.flatnonzero(old > _NEG)
        if hit.size:
            w, p, pm, inter, old = w[hit], p[hit], pm[hit], inter[hit], old[hit]
            iou = tiou_from_parts(inter, lay.len[pm], lay.wlen[w])
            if method == "gaussian":
                np.multiply.at(lay.s, p, np.exp(-np.square(iou) / sigma))  # in order, repeats included
                dead = p[~(lay.s[p] >= min_score)]
            elif method == "linear":
                hit = np.flatnonzero(iou >= iou_threshold)
                p, old = p[hit], old[hit]
                np.multiply.at(lay.s, p, 1.0 - iou[hit])
                dead = p[~(lay.s[p] >= min_score)]
            else:
                hit = np.flatnonzero(iou > iou_threshold)
                p, old = p[hit], old[hit]
                dead = p
            lay.s[dead] = _NEG
            bp = p >> lay.shift
            redo.append(bp if rising else bp[old == lay.bmax[bp]])
        redo = np.concatenate(redo) if len(redo) > 1 else redo[0]
        lay.bmax[redo] = lay.s2[redo].max(axis=1)
        redo >>= lay.sshift
        lay.sbmax[redo] = lay.b2[redo].max(axis=1)
        if capped:
            full = np.append(n_sel >= limit, False)  # (+ the -inf superblock's group)
            if full.any():
                lay.bmax[full[lay.block_group]] = _NEG
                lay.sbmax[full[lay.block_group[:: 1 << lay.sshift]]] = _NEG

        # 4. compaction
        rounds += 1
        if rounds % _COMPACT_EVERY == 0 and lay.size > _COMPACT_MIN and (
                2 * active.size < lay.gcode.size or _COMPACT * np.count_nonzero(lay.s > _NEG) < lay.size):
            keep_group = np.zeros(lay.gcode.size, bool)
            keep_group[active] = True
            if capped:
                keep_group &= n_sel < limit
            old_codes = lay.gcode
            lay = lay.compact(keep_group)
            if lay is None:
                break
            n_sel = n_sel[np.searchsorted(old_codes, lay.gcode)]

    keep = np.concatenate(kept_idx)
    final = np.concatenate(kept_score)
    order = np.lexsort((keep, -final))
    return keep[order], final[order]


def nms(
    segments: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5, *, top_k: int | None = None,
    min_score: float = 0.0,
) -> np.ndarray:
    """Hard NMS of one group: kept indices by descending score."""
    keep, _ = batched_nms(segments, scores, None, method="hard", iou_threshold=iou_threshold, top_k=top_k,
                          min_score=min_score)
    return keep


def soft_nms(
    segments: np.ndarray, scores: np.ndarray, *, method: str = "gaussian", sigma: float = 0.5,
    iou_threshold: float = 0.0, min_score: float = 0.0, top_k: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft-NMS of one group (Gaussian or linear): kept segments, rescored scores and input indices,
    by descending rescored score."""
    if method not in ("gaussian", "linear"):
        raise ValueError(f"soft_nms method must be 'gaussian' or 'linear', got '{method}'")
    keep, new_scores = batched_nms(segments, scores, None, method=method, iou_threshold=iou_threshold,
                                   sigma=sigma, min_score=min_score, top_k=top_k)
    return np.asarray(segments, dtype=np.float64).reshape(-1, 2)[keep], new_scores, keep


def _top_per_group(df: pd.DataFrame, keys: list[str], k: int | None) -> pd.DataFrame:
    if k is None:
        return df
    rank = df.groupby(keys, sort=False)["score"].rank(method="first", ascending=False)
    return df[rank.to_numpy() <= k]


def nms_per_video(
    pred: pd.DataFrame,
    method: str = "gaussian",
    *,
    iou_threshold: float = 0.5,
    sigma: float = 0.5,
    per_class: bool = True,
    label_column: str | None = None,
    pre_nms_top_k: int | None = None,
    max_per_video: int | None = None,
    min_score: float = 0.0,
) -> pd.DataFrame:
    """NMS of a prediction table grouped by video (and by label when ``per_class``).

    ``pre_nms_top_k`` keeps the best candidates of each group before NMS, ``max_per_video`` the best
    detections of each video after it (as ActionFormer's ``max_seg_num``). Other columns are carried;
    ``score`` holds the rescored value. Rows come out by video (first appearance) and descending score.
    """
    if label_column is None:
        label_column = "label_id" if "label_id" in pred.columns else "label"
    keys = ["video_id", label_column] if per_class else ["video_id"]
    missing = [c for c in [*keys, "start", "end", "score"] if c not in pred.columns]
    if missing:
        raise ValueError(f"nms_per_video: prediction table lacks column(s) {missing}")
    candidates = _top_per_group(pred.reset_index(drop=True), keys, pre_nms_top_k).reset_index(drop=True)
    groups = candidates.groupby(keys, sort=False).ngroup().to_numpy()
    keep, scores = batched_nms(
        candidates[["start", "end"]].to_numpy(np.float64), candidates["score"].to_numpy(np.float64), groups,
        method=method, iou_threshold=iou_threshold, sigma=sigma, min_score=min_score,
    )
    out = candidates.iloc[keep].assign(score=scores)
    out = _top_per_group(out, ["video_id"], max_per_video)
    video_rank = pd.Index(pd.unique(candidates["video_id"])).get_indexer(out["video_id"])
    order = np.lexsort((np.arange(len(out)), -out["score"].to_numpy(), video_rank))
    return out.iloc[order].reset_index(drop=True)


def nms_per_class(candidates: pd.DataFrame, iou_threshold: float, max_per_video: int | None = None) -> pd.DataFrame:
    """Hard NMS per video and class (``label_id`` if present, else ``label``), then the best
    ``max_per_video`` detections of each video (P-GCN / D-Net test-time post-processing)."""
    return nms_per_video(candidates, "hard", iou_threshold=iou_threshold, per_class=True,
                         max_per_video=max_per_video)
