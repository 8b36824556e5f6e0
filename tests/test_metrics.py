"Property tests of erret.metrics: invariances, pessimistic ties, agreement with brute force (full argsort)."
import math
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck

from erret.core import ErretError
from erret.metrics import (first_positive_rank, recall_at_k, median_rank, mean_rank, retrieval_metrics, topk_ranks,
                           average_precision, mean_average_precision, revisited_map, i2t, t2i, pointing_game)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, ties=False, allow_empty=False):
    "A (Q, G) score matrix (integer-valued when `ties`, else distinct), a positive mask, and a seed"
    Q, G = draw(st.integers(1, 12)), draw(st.integers(2, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    S = rng.integers(0, 4, (Q, G)).astype(float) if ties else rng.permutation(Q * G).reshape(Q, G) / (Q * G)
    P = rng.random((Q, G)) < draw(st.floats(0.0, 0.5))
    if not allow_empty: P[np.arange(Q), rng.integers(0, G, Q)] = True
    return S, P, rng


def brute_rank_argsort(S, P):
    "1-based rank of the first positive in a full descending sort (no ties in S)"
    order = np.argsort(-S, axis=1, kind='stable')
    return np.take_along_axis(P, order, 1).argmax(1) + 1


def brute_rank_pessimistic(S, P):
    "1 + number of negatives scoring at least the best positive"
    best = np.where(P, S, -np.inf).max(1, keepdims=True)
    return 1 + ((S >= best) & ~P).sum(1)


def brute_ap(s, pos, junk):
    "Official Revisited Oxford/Paris compute_map for one query, with pessimistic ties (negatives first)"
    if pos.sum() == 0: return math.nan
    order = np.lexsort((pos.astype(int), -s))             # by score desc, negatives before positives among ties
    keep = ~junk[order]
    ranked_pos = pos[order][keep]
    ranks = np.flatnonzero(ranked_pos)
    ap = 0.
    for j, r in enumerate(ranks):
        ap += ((1. if r == 0 else j / r) + (j + 1) / (r + 1)) / 2 / pos.sum()
    return 100 * ap


@SETTINGS
@given(problems())
def test_rank_matches_full_argsort(prob):
    S, P, _ = prob
    r = first_positive_rank(S, P)
    np.testing.assert_array_equal(r, brute_rank_argsort(S, P))
    lists = [np.flatnonzero(p) for p in P]
    np.testing.assert_array_equal(first_positive_rank(torch.tensor(S), lists, chunk_size=3), r)


@SETTINGS
@given(problems(ties=True))
def test_ties_pessimistic(prob):
    S, P, _ = prob
    np.testing.assert_array_equal(first_positive_rank(S, P), brute_rank_pessimistic(S, P))
    np.testing.assert_array_equal(first_positive_rank(S, [np.flatnonzero(p) for p in P]), brute_rank_pessimistic(S, P))


def test_all_tied_is_worst_case():
    S = np.zeros((3, 10))
    np.testing.assert_array_equal(first_positive_rank(S, [[0], [1, 2], list(range(10))]), [10, 9, 1])
    assert mean_average_precision(np.zeros((1, 4)), [[0]]) == pytest.approx(100 * 0.5 * (0 + 1 / 4))


@SETTINGS
@given(problems(ties=True))
def test_gallery_permutation_invariance(prob):
    S, P, rng = prob
    perm = rng.permutation(S.shape[1])
    np.testing.assert_array_equal(first_positive_rank(S, P), first_positive_rank(S[:, perm], P[:, perm]))
    assert retrieval_metrics(S, P) == retrieval_metrics(S[:, perm], P[:, perm])
    a, b = mean_average_precision(S, P), mean_average_precision(S[:, perm], P[:, perm])
    assert a == pytest.approx(b, abs=1e-9)


@SETTINGS
@given(problems(), st.lists(st.integers(1, 50), min_size=2, max_size=6))
def test_recall_monotone_in_k(prob, ks):
    S, P, _ = prob
    ks = sorted(set(ks))
    rk = recall_at_k(first_positive_rank(S, P), ks)
    vals = [rk[f'R@{k}'] for k in ks]
    assert all(0 <= v <= 100 for v in vals)
    assert vals == sorted(vals)


@SETTINGS
@given(problems(ties=True, allow_empty=True), st.floats(0, 0.3))
def test_map_matches_brute_force(prob, pj):
    S, P, rng = prob
    J = (rng.random(S.shape) < pj) & ~P
    m, aps = mean_average_precision(S, P, J, per_query=True)
    ref = np.array([brute_ap(s, p, j) for s, p, j in zip(S, P, J)])
    np.testing.assert_allclose(aps, ref, atol=1e-9)
    if np.isnan(ref).all(): assert math.isnan(m)
    else: assert m == pytest.approx(np.nanmean(ref), abs=1e-9)


@SETTINGS
@given(problems(ties=True))
def test_map_100_when_positives_first(prob):
    S, P, _ = prob
    S2 = S + 10 * P                                      # every positive above every negative
    assert mean_average_precision(S2, P) == pytest.approx(100.0)
    for s, p in zip(S2, P): assert average_precision(s, p) == pytest.approx(100.0)
    assert recall_at_k(first_positive_rank(S2, P), [1])['R@1'] == 100.0


def test_ap_trapezoid_by_hand():
    s = np.array([.9, .8, .7, .6, .5])
    # positives at 0-based ranks 1 and 3: 1/2 * 1/2 (0/1 + 1/2) + 1/2 * 1/2 (1/3 + 2/4)
    assert average_precision(s, [1, 3]) == pytest.approx(100 * (0.25 * 0.5 + 0.25 * (1 / 3 + 0.5)))
    assert average_precision(s, [1, 3], junk=[0]) == pytest.approx(average_precision(s[1:], [0, 2]))
    assert math.isnan(average_precision(s, []))
    with pytest.raises(ErretError, match='both positive and junk'): average_precision(s, [1], junk=[1])


def test_revisited_protocol_hand_made():
    # two queries, gallery ranked 0 1 2 3 4 5 for both
    S = np.tile(np.arange(6, 0, -1.), (2, 1))
    easy, hard, junk = [[1], [2]], [[3], []], [[0], []]
    m = revisited_map(S, easy, hard, junk)
    # q0 easy: junk {0,3} -> item 1 first: 1; q1 easy: item 2 at rank 2: 1/2 (0/2 + 1/3)
    assert m['easy'] == pytest.approx(100 * (1 + 0.5 * (1 / 3)) / 2)
    # q0 medium: {1,3} at ranks 0, 2 after removing 0 -> 1/2(1+1) + 1/2 * 1/2 (1/2 + 2/3); q1 as in easy
    assert m['medium'] == pytest.approx(100 * ((0.5 + 0.25 * (0.5 + 2 / 3)) + 0.5 * (1 / 3)) / 2)
    # hard: q1 has no hard positive -> skipped; q0: junk {0,1} -> item 3 at rank 1: 1/2 (0 + 1/2)
    assert m['hard'] == pytest.approx(25.0)


def test_revisited_protocol_matches_mean_average_precision():
    rng = np.random.default_rng(0)
    S = rng.standard_normal((6, 30))
    perms = [rng.permutation(30) for _ in range(6)]
    easy, hard, junk = [p[:3] for p in perms], [p[3:5] for p in perms], [p[5:8] for p in perms]
    m = revisited_map(S, easy, hard, junk)
    cat = lambda *xs: [np.concatenate(x) for x in zip(*xs)]
    assert m['easy'] == pytest.approx(mean_average_precision(S, easy, cat(junk, hard)))
    assert m['medium'] == pytest.approx(mean_average_precision(S, cat(easy, hard), junk))
    assert m['hard'] == pytest.approx(mean_average_precision(S, hard, cat(junk, easy)))


def vsepp_ranks_i2t(d):
    ranks = np.zeros(d.shape[0])
    for i in range(d.shape[0]):
        inds = np.argsort(d[i])[::-1]
        ranks[i] = min(np.where(inds == j)[0][0] for j in range(5 * i, 5 * i + 5))
    return ranks + 1


@SETTINGS
@given(st.integers(1, 15), st.integers(0, 2**31))
def test_i2t_t2i_match_vsepp(n, seed):
    rng = np.random.default_rng(seed)
    d = rng.permutation(n * n * 5).reshape(n, 5 * n).astype(float)        # distinct scores
    res, r = i2t(d, return_ranks=True)
    np.testing.assert_array_equal(r, vsepp_ranks_i2t(d))
    res_t, rt = t2i(d, return_ranks=True)
    ref_t = np.array([np.where(np.argsort(d[:, j])[::-1] == j // 5)[0][0] + 1 for j in range(5 * n)])
    np.testing.assert_array_equal(rt, ref_t)
    assert set(res) == {'R@1', 'R@5', 'R@10', 'med r', 'mean r'}
    assert res_t['med r'] == np.floor(np.median(ref_t - 1)) + 1


def test_i2t_shape_error():
    with pytest.raises(ErretError, match=r'expected \(N_img, N_img\*5\)'): i2t(np.zeros((2, 9)))


def test_topk_ranks_agree_with_full_ranks():
    rng = np.random.default_rng(1)
    S = rng.standard_normal((50, 300)); t = rng.integers(0, 300, 50)
    full = first_positive_rank(S, t)
    tk = topk_ranks(np.argsort(-S, 1)[:, :20], t, 300)
    np.testing.assert_array_equal(tk[full <= 20], full[full <= 20])
    assert np.isinf(tk[full > 20]).all()
    assert recall_at_k(tk, (1, 5, 20)) == recall_at_k(full, (1, 5, 20))


def test_median_mean_rank():
    assert median_rank([1, 2, 3, 4]) == 2.0 and mean_rank([1, 2, 3, 4]) == 2.5
    with pytest.raises(ErretError, match='1-based'): median_rank([0, 1])


def test_bad_inputs():
    with pytest.raises(ErretError, match='has no positive'): first_positive_rank(np.zeros((2, 3)), [[0], []])
    with pytest.raises(ErretError, match='NaN'): first_positive_rank(np.array([[np.nan, 1.]]), [0])
    with pytest.raises(ErretError, match='one entry per query'): first_positive_rank(np.zeros((2, 3)), [0])


@SETTINGS
@given(st.integers(0, 2**31), st.floats(0, 8))
def test_pointing_game_matches_dilated_mask(seed, tol):
    rng = np.random.default_rng(seed)
    N, H, W = 5, 20, 24
    sal = rng.random((N, H, W))
    boxes = []
    for _ in range(N):
        xs, ys = np.sort(rng.random((2, 2)) * [[W], [H]], axis=1)
        boxes.append(np.array([[xs[0], ys[0], xs[1], ys[1]]]))
    acc, hits = pointing_game(torch.tensor(sal), boxes, tolerance=tol)
    yy, xx = np.mgrid[:H, :W]
    for m, (x1, y1, x2, y2), h in zip(sal, [b[0] for b in boxes], hits):
        dx = np.maximum(np.maximum(x1 - xx, 0), xx - x2); dy = np.maximum(np.maximum(y1 - yy, 0), yy - y2)
        assert h == (np.hypot(dx, dy) <= tol).flat[m.argmax()]
    assert acc == pytest.approx(100 * hits.mean())


def test_pointing_game_tolerance_scaling():
    sal = np.zeros((1, 100, 100)); sal[0, 50, 50] = 1
    box = [np.array([[60, 0, 90, 99]])]                   # 10 px to the right of the maximum
    assert pointing_game(sal, box, tolerance=15)[1][0]
    assert not pointing_game(sal, box, tolerance=15, ref_size=200)[1][0]    # 15 px at 200 -> 7.5 px here
    assert pointing_game(sal, box, tolerance=15, ref_size=(100, 100))[1][0]
