"Tests for erret.err: benchmark filters on hand-made regions, GRN equations, the Eq. 6 loss."
import torch
from torch import nn
import pytest
from erret.core import ErretError
from erret.datasets import VGRegion
from erret.err import (object_vocab, count_mentions, keep_mentions, keep_area, dedup_iou, content_words, candidate_pairs,
                       pair_regions, merge_sets, image_split, make_queries, language_gate, compose_residual, GRN)
from erret.losses import set_softmax_loss

def R(rid, iid, phrase='x', box=(0, 0, 1, 1)): return VGRegion(rid, iid, phrase, tuple(map(float, box)))

def test_mentions():
    V = object_vocab()
    assert count_mentions('a small red circle left of two blue boxes', V) == 2
    assert count_mentions('a plus sign', V) == 1
    rs = [R(1, 1, 'a star and a hexagon'), R(2, 1, 'a star')]
    assert [r.region_id for r in keep_mentions(rs, V)] == [1]

def test_area_and_iou():
    rs = [R(1, 1, box=(0, 0, 6, 6)), R(2, 1, box=(0, 0, 20, 20)), R(3, 1, box=(0, 0, 20, 19))]
    assert [r.region_id for r in keep_area(rs, {1: (20, 20)})] == []          # 9% and 100%, 95%
    assert [r.region_id for r in keep_area(rs, {1: (30, 30)})] == [2, 3]
    assert [r.region_id for r in dedup_iou(rs)] == [2, 1]                     # 3 has IoU 0.95 with the larger 2

def test_blocking_and_pairing():
    rs = [R(1, 1, 'a red circle above a blue star'), R(2, 2, 'a red circle above a blue star'),
          R(3, 3, 'a green square below a pink cross'), R(4, 1, 'a red circle above a blue star')]
    assert content_words('a red circle next to a star') == {'red', 'circle', 'star'}
    assert candidate_pairs(rs) == [(0, 1), (1, 3)]
    assert pair_regions(rs) == [(0, 1), (1, 3)]

def test_merge_and_split():
    assert merge_sets(6, [(0, 1), (0, 2), (2, 3), (4, 5)]) == [(0, [1, 2]), (4, [5])]
    assert merge_sets(4, [(0, 1), (0, 2), (0, 3)], max_targets=1) == [(0, [1])]
    assert image_split(5, {5: 'test'}) == 'test' and image_split(5) in ('train', 'val', 'test')
    rr = [R(i, i) for i in range(3)]
    qs = make_queries(rr, [(0, [1, 2])], {0: 'val', 1: 'train', 2: 'val'})
    assert qs[0].split == 'val' and [t.region_id for t in qs[0].targets] == [2]

def test_grn_equations():
    torch.manual_seed(0)
    X, L = torch.randn(1, 2, 1, 1), torch.randn(1, 1)
    g = GRN(2, 1, kernel=1)
    x = torch.cat([X[0, :, 0, 0], L[0]])
    lin = lambda conv, v: conv.weight[:, :, 0, 0] @ v + conv.bias
    Yg = torch.sigmoid(lin(g.W_g2, torch.relu(lin(g.W_g1, x)))) * X[0, :, 0, 0]        # Eq. 1
    Yr = lin(g.W_r2, torch.relu(lin(g.W_r1, x)))                                          # Eq. 4
    torch.testing.assert_close(language_gate(X, L, g.W_g1, g.W_g2)[0, :, 0, 0], Yg)
    torch.testing.assert_close(compose_residual(X, L, g.W_r1, g.W_r2)[0, :, 0, 0], Yr)
    with torch.no_grad(): g.w_g.fill_(0.3); g.w_r.fill_(-2.0)
    torch.testing.assert_close(g(X, L)[0, :, 0, 0], 0.3 * Yg - 2.0 * Yr)                  # Eq. 5
    assert GRN(4, 3)(torch.randn(2, 4, 7, 7), torch.randn(2, 3)).shape == (2, 4, 7, 7)
    g1 = GRN(4, 3); assert g1.w_g.item() == 1.0 and g1.w_r.item() == 1.0
    with pytest.raises(ErretError, match='residual'): GRN(4, 3, residual='x')

def test_loss_n2_is_soft_triplet():
    sp, sn = torch.rand(7) * 2 - 1, torch.rand(7, 1) * 2 - 1
    for tau in (1.0, 0.2):
        torch.testing.assert_close(set_softmax_loss(sp, sn, tau), torch.nn.functional.softplus((sn[:, 0] - sp) / tau).mean())

def test_models_and_loss_shapes():
    from erret.err import ERRModel, METHODS, err_loss
    X, tok, ln = torch.randn(5, 6, 2, 2), torch.randint(4, 15, (5, 4)), torch.tensor([4, 1, 2, 3, 4])
    for m in METHODS:
        for fc in (True, False):
            e = ERRModel(6, 15, m, fc=fc, proj=8)(X, tok, ln)
            assert e.shape == (5, 8) and torch.allclose(e.norm(dim=-1), torch.ones(5), atol=1e-5)
    loss = err_loss(ERRModel(6, 15, 'GRN'), (X, X + 0.01, tok, ln))
    assert loss.ndim == 0 and loss.item() > 0
    Xn = torch.randn(5, 2, 6, 2, 2)                                                     # explicit negatives (RPN setting)
    assert err_loss(ERRModel(6, 15, 'GRN'), (X, X + 0.01, tok, ln, Xn)).item() > 0

def test_scores_and_ranks():
    from erret.err import ERRModel, score_queries, rank_queries
    torch.manual_seed(0)
    m = ERRModel(6, 15, 'GRN', proj=8)
    Xq, Xg, tok, ln = torch.randn(3, 6, 1, 1), torch.randn(9, 6, 1, 1), torch.randint(4, 15, (3, 4)), torch.tensor([4, 2, 3])
    S = score_queries(m, Xq, Xg, tok, ln, pairs_per_block=9)                            # one query per block
    ref = torch.stack([m(Xg, tok[i:i+1].expand(9, -1), ln[i:i+1].expand(9)) @ m(Xq[i:i+1], tok[i:i+1], ln[i:i+1])[0] for i in range(3)])
    torch.testing.assert_close(S, ref, atol=1e-5, rtol=1e-5)
    S = torch.tensor([[0.9, 0.8, 0.1, 0.5]])
    assert rank_queries(S, [[3]], torch.tensor([0]), torch.tensor([0, 1, 2, 3])).tolist() == [2]   # candidate 0: own image
    assert rank_queries(S, [[]], torch.tensor([0]), torch.tensor([0, 1, 2, 3])).tolist() == [5]    # no possible hit

def test_phrase_focus_and_box_objects():
    from pathlib import Path
    from erret.datasets import VGData, VGObject
    from erret.err import phrase_focus, box_objects, unnamed_objects
    assert [phrase_focus(p) for p in ('a red disc above two boxes', 'a large striped star', 'a circle at the top')] == ['relation', 'attributes', 'objects']
    vg = VGData(Path('.'), [], {}, {1: [VGObject(1, 1, ['circle'], (0, 0, 10, 10)), VGObject(2, 1, ['star'], (8, 8, 30, 30)), VGObject(3, 1, ['square'], (50, 50, 60, 60))]})
    named, unnamed = box_objects(vg, R(1, 1, 'the ball on the left', (0, 0, 20, 20)))
    assert [o.object_id for o in named] == [1] and unnamed == []                 # the star is mostly outside; the square far away
    assert unnamed_objects(vg, R(1, 1, 'the ball on the left', (0, 0, 40, 40))) == 1


def test_lesson_is_symmetric_without_text():
    "The lesson's candidates share exactly one object with the query each: a text-free score is at chance"
    from erret.err import lesson_scenes
    sc, qs = lesson_scenes(30, n_pos=3, n_neg=3, seed=1)
    for q in qs:
        pairs = [{o.pair for o in sc[r].objects} for r in q.cands]
        assert all(q.named in p for p in pairs[:3]) and all(q.other in p for p in pairs[3:])
        assert all(len(p & {q.named, q.other}) == 1 for p in pairs)


def test_err_loss_in_batch_plus_explicit():
    from erret.err import ERRModel, err_loss
    torch.manual_seed(0)
    m = ERRModel(6, 15, 'GRN', proj=8)
    X, tok, ln = torch.randn(5, 6, 2, 2), torch.randint(4, 15, (5, 4)), torch.tensor([4, 1, 2, 3, 4])
    both = err_loss(m, (X, X, tok, ln, X.roll(2, 0)[:, None]), n_neg=1, tau=1.0, in_batch=True)
    torch.testing.assert_close(both, err_loss(m, (X, X, tok, ln), n_neg=2, tau=1.0), atol=1e-5, rtol=1e-5)
