"""1-D non-maximum suppression: hard NMS and Soft-NMS (Gaussian, linear), per class or class-agnostic.

Soft-NMS (Bodla et al., ICCV'17, Eq. 3 linear and the Gaussian rule) as ActionFormer / BSN apply it to
segments: repeatedly select the highest-scoring remaining segment M and rescore every other remaining
segment b_i of its group:

* hard:     remove b_i if tIoU(M, b_i) > iou_threshold
* linear:   s_i <- s_i * (1 - tIoU(M, b_i))  if tIoU(M, b_i) >= iou_threshold
* gaussian: s_i <- s_i * exp(-tIoU(M, b_i)^2 / sigma)

Segments whose score falls below ``min_score`` are dropped; at most ``top_k`` segments are selected per
group. All groups (videos, classes) are processed at once: each loop iteration selects one segment in
every group and rescoring is one vectorized numpy pass, so the loop runs over kept segments only.
Score ties are broken by input order (stable), so results are deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from talbench.eval.tiou import _tiou

METHODS = ("hard", "linear", "gaussian")


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

    Returns the kept indices into the input and their (rescored) scores, by descending score.
    """
    _check(method, iou_threshold, sigma)
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = scores.size
    if segments.shape[0] != n:
        raise ValueError(f"segments {segments.shape} and scores {scores.shape} differ in length")
    codes = np.zeros(n, np.int64) if groups is None else pd.factorize(np.asarray(groups))[0].astype(np.int64)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    limit = n if top_k is None else int(top_k)
    if method == "hard" and _typical_group_size(codes[scores >= min_score]) <= _HARD_LOOP_MAX_GROUP:
        return _hard_nms(segments, scores, codes, iou_threshold, min_score, limit)
    return _select(segments, scores, codes, method, iou_threshold, sigma, min_score, limit)


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
        iou = _tiou(seg[remaining, 0], seg[remaining, 1], seg[partner, 0], seg[partner, 1])
        keep = iou <= iou_threshold
        keep &= n_selected[group[remaining]] < limit
        remaining = remaining[keep]

    if not kept_pos:
        return np.zeros(0, np.int64), np.zeros(0)
    pos = np.concatenate(kept_pos)
    final = score[pos]
    by_score = np.lexsort((order[pos], -final))
    return order[pos][by_score], final[by_score]


_NEG = -np.inf
_HARD_LOOP_MAX_GROUP = 150  # hard NMS of groups up to this typical size: _hard_nms (cheaper setup)


def _typical_group_size(codes: np.ndarray) -> float:
    """Size of the group of the average segment (sum of squared group sizes / number of segments)."""
    count = np.bincount(codes)
    return float(np.square(count, dtype=np.float64).sum()) / max(codes.size, 1)
_CANDIDATES = 16  # candidates per group and round: at most this many selections per group and round
_MAX_CANDIDATES = 16  # (up to this many when fewer than _CANDIDATE_BUDGET / _CANDIDATES groups are left)
_CANDIDATE_BUDGET = 256
_CLASS_LOG2 = 2  # window bins: segment lengths in [4^k, 4^(k+1)), ...
_MIN_BIN = 64  # ... merged up to this many segments
_COMPACT = 4  # every _COMPACT_EVERY rounds, compact layouts of over _COMPACT_MIN slots when fewer than
_COMPACT_EVERY = 8  # 1 / _COMPACT of the slots are alive or fewer than half the groups active
_COMPACT_MIN = 4096
_RATIO_SLACK = 1e-6  # relative margin of the length-ratio test (tIoU <= shorter / longer length)


def _ragged_arange(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(first[i], first[i] + counts[i])`` (``counts >= 0``)."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if ends.size else 0
    return np.repeat(first - (ends - counts), counts) + np.arange(total)


class _Layout:
    """State of the selection loop: the alive segments of the unfinished groups.

    Scores ``s`` (and ``idx``, ``st``, ``en``, ``len``): group-contiguous, input order inside a group,
    every group padded with -inf to whole superblocks of ``S`` blocks of ``B`` slots, and one all--inf
    superblock at the end. ``bmax`` / ``sbmax``: block / superblock maxima. Window index: the
    positive-length segments of every (group, length class) bin sorted by start, with their start, end
    and length in that order and the float key ``bin * stride + start`` (bins never interleave): the
    segments of a bin that can overlap M = [s, e] (start in [s - longest of the bin, e]) are one
    ``searchsorted`` range.
    """

    def __init__(self, group, elems, scores, st, en, ln, w_elem, w_bin, bins, gcode, key_width, stride):
        # group: local group (0..G-1, ascending, all present) of the segments in layout order; w_elem:
        # segment number of every window entry, sorted by (bin, start, input index); bins: (group,
        # shortest, longest length) of every bin, sorted by group
        n = group.size
        new_group = np.ones(n, bool)
        np.not_equal(group[1:], group[:-1], out=new_group[1:])
        first = np.flatnonzero(new_group)
        count = np.diff(first, append=n)
        n_groups = first.size
        self.gcode = gcode
        typical = float(np.square(count, dtype=np.float64).sum()) / n  # group size of the average segment
        self.shift = shift = int(np.clip(np.round(np.log2(typical / _CANDIDATES) / 2), 0, 6))
        self.sshift = sshift = int(np.clip(np.round(np.log2(typical / (4 * _CANDIDATES))) - shift, 0, 6))
        unit = 1 << (shift + sshift)
        padded = (count + unit - 1) // unit * unit
        offset = np.cumsum(padded) - padded
        self.size = size = int(padded.sum()) + unit
        pos = np.repeat(offset - first, count) + np.arange(n)
        self.idx = np.full(size, -1, np.int64)
        self.idx[pos] = elems
        self.s = np.full(size, _NEG)
        self.s[pos] = scores
        self.st = np.zeros(size)
        self.st[pos] = st
        self.en = np.zeros(size)
        self.en[pos] = en
        self.len = np.zeros(size)
        self.len[pos] = ln
        self.lo_base = self.st - 4.0 * np.spacing(np.abs(self.st))  # window starts err on the low side
        self.s2 = self.s.reshape(size >> shift, 1 << shift)
        self.bmax = self.s2.max(axis=1)
        self.b2 = self.bmax.reshape(size >> (shift + sshift), 1 << sshift)
        self.sbmax = self.b2.max(axis=1)
        self.block_group = np.repeat(np.arange(n_groups + 1), np.append(padded, unit) >> shift)
        self.sb_group = self.block_group[:: 1 << sshift]
        self.gsb0 = offset >> (shift + sshift)  # first superblock of every group
        self.gnsb = padded >> (shift + sshift)
        self.g_base = np.arange(n_groups + 1) * key_width
        self.b_base = self.g_base[self.block_group]
        self.sb_base = self.g_base[self.sb_group]

        self.w_elem, self.w_bin, self.bins = w_elem, w_bin, bins
        self.wpos = pos[w_elem]
        self.wst, self.wen, self.wlen = st[w_elem], en[w_elem], ln[w_elem]
        self.bin_short = bins[:, 1] * (1.0 - _RATIO_SLACK)
        self.bin_reach = bins[:, 2] * (1.0 + _RATIO_SLACK)
        self.stride = stride
        self.wkey = w_bin * stride + self.wst
        bin_group = bins[:, 0].astype(np.int64)
        self.gbin0 = np.searchsorted(bin_group, np.arange(n_groups))
        self.gbin_n = np.searchsorted(bin_group, np.arange(n_groups), side="right") - self.gbin0

    @classmethod
    def build(cls, elems, scores, codes, start, end, key_width):
        """Layout of the candidates ``elems`` (ascending input indices) with ``scores``."""
        code = codes[elems]
        o = np.argsort(code, kind="stable")
        elems, code, scores = elems[o], code[o], scores[o]
        new_group = np.ones(code.size, bool)
        np.not_equal(code[1:], code[:-1], out=new_group[1:])
        gcode, group = code[new_group], np.cumsum(new_group) - 1
        st, en = start[elems], end[elems]
        ln = en - st
        pw = np.flatnonzero(ln > 0)  # zero-length segments overlap nothing: never rescored, never rescore
        # window bins: the length classes [4^k, 4^(k+1)) of a group, longest first; a class of fewer than
        # _MIN_BIN segments joins the bin before it (a query per selected segment and bin costs about as
        # much as a few segments in a window)
        cls_ = np.frexp(ln[pw])[1] >> _CLASS_LOG2
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
        bound = max(np.abs(st[pw]).max(initial=0.0), np.abs(en[pw]).max(initial=0.0), ln[pw].max(initial=0.0))
        stride = 2.0 ** np.ceil(np.log2(8.0 * bound * (1.0 + _RATIO_SLACK) + 1.0))  # |start|, |end|,
        if not np.isfinite(stride * (new_bin.sum() + 1.0)):  # reach <= stride / 8: bins never interleave
            raise ValueError("NMS: segment bounds too large")
        ow = np.argsort(w_bin * stride + st[pw], kind="stable")  # = the window keys
        w_elem, w_bin = pw[ow], w_bin[ow]
        bin_first = np.flatnonzero(np.diff(w_bin, prepend=-1))
        bins = np.zeros((bin_first.size, 3))
        if w_elem.size:
            bins[:, 0] = group[w_elem[bin_first]]
            bins[:, 1] = np.minimum.reduceat(ln[w_elem], bin_first)
            bins[:, 2] = np.maximum.reduceat(ln[w_elem], bin_first)
        return cls(group, elems, scores, st, en, ln, w_elem, w_bin, bins, gcode, key_width, stride)

    def compact(self, keep_group: np.ndarray) -> _Layout | None:
        """The alive segments of the groups where ``keep_group`` (by local group), same orders."""
        pos = np.flatnonzero(self.s > _NEG)
        old_group = self.block_group[pos >> self.shift]
        pos, old_group = pos[keep_group[old_group]], old_group[keep_group[old_group]]
        if pos.size == 0:
            return None
        keep_group = np.zeros(self.gcode.size, bool)  # the groups with alive segments
        keep_group[old_group] = True
        new_of_group = np.cumsum(keep_group) - 1
        number = np.full(self.size, -1, np.int64)
        number[pos] = np.arange(pos.size)
        w_elem = number[self.wpos]
        alive = w_elem >= 0
        keep_bin = keep_group[self.bins[:, 0].astype(np.int64)]
        bins = self.bins[keep_bin]  # (bins left empty stay: their windows are empty)
        bins[:, 0] = new_of_group[bins[:, 0].astype(np.int64)]
        return _Layout(new_of_group[old_group], self.idx[pos], self.s[pos], self.st[pos], self.en[pos],
                       self.len[pos], w_elem[alive], (np.cumsum(keep_bin) - 1)[self.w_bin[alive]], bins,
                       self.gcode[keep_group], self.g_base[1], self.stride)


def _select(segments, scores, codes, method, iou_threshold, sigma, min_score, limit):
    """NMS / Soft-NMS of every group at once, several selections per group and round (module docstring)."""
    empty = np.zeros(0, np.int64), np.zeros(0)
    cand = np.flatnonzero(scores >= min_score)
    if cand.size == 0 or limit <= 0:
        return empty
    if not np.isfinite(segments[cand]).all():
        raise ValueError("NMS needs finite segment bounds")
    cand_scores = scores[cand]
    finite = cand_scores[np.isfinite(cand_scores)]
    low = float(finite.min(initial=0.0)) - 1.0  # ranking keys clip scores to [low, high]
    high = float(finite.max(initial=0.0))
    key_width = 2.0 ** np.ceil(np.log2(2.0 * (high - low)))
    if not np.isfinite(key_width * (codes.max() + 2.0)):
        raise ValueError("NMS: scores too large")
    lay = _Layout.build(cand, cand_scores, codes, segments[:, 0], segments[:, 1], key_width)
    capped = limit < cand.size
    # several selections per round rescore a segment several times: dropping it below min_score after
    # the last factor instead of the first is the same while scores are >= 0 (a factor never raises it)
    multi = method == "hard" or cand_scores.min() >= 0
    ratio = iou_threshold * (1.0 - _RATIO_SLACK) if method != "gaussian" else 0.0  # tIoU that counts
    n_sel = np.zeros(lay.gcode.size, np.int64)
    kept_idx, kept_score = [], []
    rounds = 0
    while True:
        # 1. candidates: every segment of a group whose ranking key reaches the key of the group's k-th
        # best superblock (so all of its k best segments), sorted by score then input order. Keys
        # group * key_width + clip(score): sorted, every group keeps its own range; within a group the
        # key is monotone in the score (nearly equal scores may merge: more candidates, same result)
        sk = np.sort(lay.sb_base + np.clip(lay.sbmax, low, high))
        last = lay.gsb0 + lay.gnsb - 1
        active = np.flatnonzero(sk[last] > lay.g_base[:-1] + low)
        if active.size == 0:
            break
        n_cand = int(np.clip(_CANDIDATE_BUDGET // active.size, _CANDIDATES, _MAX_CANDIDATES)) if multi else 1
        floor = np.full(lay.gcode.size + 1, np.inf)
        floor[active] = np.where(lay.gnsb[active] >= n_cand,
                                 sk[np.maximum(last[active] - (n_cand - 1), lay.gsb0[active])], _NEG)
        cb = np.flatnonzero((lay.b_base + lay.bmax >= floor[lay.block_group]) & (lay.bmax > _NEG))
        vals = lay.s2[cb]
        cb_group = lay.block_group[cb]
        i, j = np.nonzero(((vals + lay.b_base[cb][:, None]) >= floor[cb_group][:, None]) & (vals > _NEG))
        cpos = (cb[i] << lay.shift) + j  # ascending
        cgroup = cb_group[i]
        cval = vals[i, j]
        # by group, score descending, position: a stable sort of group * key_width + (high - score),
        # checked (merged nearly equal scores may come out of order: then an exact lexsort)
        o = np.argsort(lay.g_base[cgroup] + (high - np.clip(cval, low, high)), kind="stable")
        cpos, cgroup, cval = cpos[o], cgroup[o], cval[o]
        if np.any((cval[1:] > cval[:-1]) & (cgroup[1:] == cgroup[:-1])):
            o = np.lexsort((cpos, -cval, cgroup))
            cpos, cgroup = cpos[o], cgroup[o]
        rank = np.arange(cpos.size) - np.searchsorted(cgroup, cgroup)
        keep = rank < n_cand
        row = np.searchsorted(active, cgroup[keep])
        k = int(rank[keep].max()) + 1
        cand_pos = np.full((active.size, k), lay.size - 1)  # padding: a slot of the -inf superblock
        cand_pos[row, rank[keep]] = cpos[keep]
        # 2. the longest prefix of candidates that no earlier candidate of the round rescores or
        # removes: the one-by-one algorithm selects exactly these next, with their current scores
        ranks = np.arange(k)
        if k > 1:
            cs, ce, cl = lay.st[cand_pos], lay.en[cand_pos], lay.len[cand_pos]
            inter = np.minimum(ce[:, :, None], ce[:, None, :]) - np.maximum(cs[:, :, None], cs[:, None, :])
            if method == "gaussian":
                touches = inter > 0
            else:
                with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 between zero-length segments
                    iou = inter / ((cl[:, None, :] + cl[:, :, None]) - inter)
                touches = (inter > 0) & ((iou > iou_threshold) if method == "hard" else (iou >= iou_threshold))
            touches &= ranks[:, None] > ranks[None, :]  # [a, b]: the earlier candidate b touches a
            stop = touches.any(axis=2) | (lay.s[cand_pos] == _NEG)
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
        redo = [m >> lay.shift]
        if capped:
            live = n_sel[m_group] < limit
            m, m_group = m[live], m_group[live]
        # 3. rescore (remove) the segments each selected one overlaps, in selection order: window
        # queries (selected, bin), skipping bins whose lengths rule out a tIoU >= threshold
        nq = lay.gbin_n[m_group]
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
            iou = inter / ((lay.len[pm] + lay.wlen[w]) - inter)
            if method == "gaussian":
                np.multiply.at(lay.s, p, np.exp(-np.square(iou) / sigma))  # factors in selection order
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
            redo.append(bp[old == lay.bmax[bp]])  # blocks whose maximum may have decreased
        redo = np.concatenate(redo) if len(redo) > 1 else redo[0]
        lay.bmax[redo] = lay.s2[redo].max(axis=1)
        redo >>= lay.sshift
        lay.sbmax[redo] = lay.b2[redo].max(axis=1)
        if capped:
            full = np.append(n_sel >= limit, False)  # (+ the -inf superblock's group)
            if full.any():
                lay.sbmax[full[lay.sb_group]] = _NEG
                lay.bmax[full[lay.block_group]] = _NEG
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

    if not kept_idx:
        return empty
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
