"Drill-down (erret.drilldown): slot update, Eq. 3.1 pooling, rollout labels, per-turn recall and rank fusion."
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from erret.core import ErretError
from erret.drilldown import (slot_update, drilldown_similarity, rollout_labels, turn_recalls, rank_fusion, grid_boxes,
                             drilldown_loss, DrillDown, HRE, RRE, RankFusion, build_model, DrilldownConfig, session_split)

torch.set_num_threads(1)


def brute_similarity(x, v, xm, vm, lam):
    out = torch.zeros(len(x), len(v))
    for q in range(len(x)):
        for g in range(len(v)):
            per_slot = []
            for m in range(x.shape[1]):
                if not xm[q, m]: continue
                cs = torch.stack([F.cosine_similarity(x[q, m], v[g, n], dim=0) for n in range(v.shape[1]) if vm[g, n]])
                per_slot.append((torch.softmax(lam * cs, 0) * cs).sum())
            out[q, g] = torch.stack(per_slot).mean()
    return out


def test_slot_update_fills_empty_first_and_changes_one_slot():
    torch.manual_seed(0)
    cell = nn.GRUCell(5, 4)
    x, f = torch.zeros(3, 3, 4), torch.zeros(3, 3, dtype=torch.bool)
    with torch.no_grad():
        for t in range(3):                                        # the policy asks for slot 2 every time ...
            x, f, a = slot_update(cell, x, f, torch.randn(3, 5), torch.full((3,), 2))
            assert a.tolist() == [t] * 3                          # ... but empty slots are filled first, in order
        assert f.all()
        q = torch.randn(3, 5)
        x2, f2, a2 = slot_update(cell, x, f, q, torch.tensor([2, 0, 1]))
    assert a2.tolist() == [2, 0, 1]
    for b, k in enumerate([2, 0, 1]):
        keep = [m for m in range(3) if m != k]
        assert torch.equal(x2[b, keep], x[b, keep])                # only the selected slot changes
        assert torch.allclose(x2[b, k], cell(q[b:b + 1], x[b, k][None])[0].detach(), atol=1e-6)


def test_slot_update_partial_state():
    cell = nn.GRUCell(2, 2)
    f = torch.tensor([[True, False, True], [True, True, True]])
    with torch.no_grad(): _, f2, a = slot_update(cell, torch.zeros(2, 3, 2), f, torch.randn(2, 2), torch.tensor([0, 1]))
    assert a.tolist() == [1, 1] and f2.all()


def test_similarity_matches_brute_force():
    torch.manual_seed(1)
    x, v = torch.randn(4, 3, 6), torch.randn(5, 7, 6)
    xm = torch.rand(4, 3) > 0.3; xm[:, 0] = True
    vm = torch.rand(5, 7) > 0.3; vm[:, 0] = True
    for lam in (1.0, 9.0):
        S = drilldown_similarity(x, v, xm, vm, lam, chunk=3)
        assert torch.allclose(S, brute_similarity(x, v, xm, vm, lam), atol=1e-5)
    assert torch.allclose(drilldown_similarity(x, v[:4], xm, vm[:4], paired=True), drilldown_similarity(x, v[:4], xm, vm[:4]).diagonal(), atol=1e-6)
    # an unfilled slot does not count, whatever it holds
    x2 = x.clone(); x2[~xm] = torch.randn(int((~xm).sum()), 6)
    assert torch.allclose(drilldown_similarity(x2, v, xm, vm), drilldown_similarity(x, v, xm, vm), atol=1e-6)


class WriteCell(nn.Module):
    def forward(self, q, h): return q.clone()


class Always(nn.Module):
    def __init__(self, k): super().__init__(); self.k = k
    def forward(self, q, x): return F.one_hot(torch.full((len(x),), self.k), x.shape[1]).float()


def test_rollout_labels_hand_made():
    e1, e2, e3 = torch.eye(3)
    img = torch.stack([e1, e2])[None]                              # the target's two regions
    full = torch.ones(1, 2, dtype=torch.bool)
    # slot 1 holds e3 (matches nothing): writing the query e2 there gives (e1, e2), both slots matching
    assert rollout_labels(WriteCell(), Always(0), torch.stack([e1, e3])[None], full, e2[None, None], img, None).tolist() == [1]
    assert rollout_labels(WriteCell(), Always(0), torch.stack([e3, e1])[None], full, e2[None, None], img, None).tolist() == [0]
    # two turns left, the roll-out policy writes slot 0 afterwards; queries e2, then e3:
    # first into slot 0: (e2, e1) -> 1, then (e3, e1) -> .5; first into slot 1: (e1, e2) -> 1, then (e3, e2) -> .5 ... tie;
    # with state (e1, e3): slot 0 -> (e2, e3) .5, (e3, e3) 0; slot 1 -> (e1, e2) 1, (e3, e2) .5: label 1
    qs = torch.stack([e2, e3])[None]
    assert rollout_labels(WriteCell(), Always(0), torch.stack([e1, e3])[None], full, qs, img, None).tolist() == [1]
    # a batch of two sessions is labelled independently
    xb = torch.stack([torch.stack([e1, e3]), torch.stack([e3, e1])])
    assert rollout_labels(WriteCell(), Always(0), xb, full.expand(2, 2), e2[None, None].expand(2, 1, 3), img.expand(2, 2, 3), None).tolist() == [1, 0]


def test_turn_recall_rule():
    S = torch.tensor([[[.9, .1, .0], [.5, .4, .3], [.0, .2, .1]],
                      [[.9, .1, .0], [.1, .6, .3], [.0, .1, .5]]])
    r = turn_recalls(S, ks=(1, 2, 3))
    assert r[0] == {'R@1': 100 / 3, 'R@2': 100.0, 'R@3': 100.0}
    assert r[1]['R@1'] == 100.0
    S_tie = S.clone(); S_tie[1, 0] = 0.9                            # a tie with the target counts against it
    assert turn_recalls(S_tie, ks=(1,))[1]['R@1'] == 200 / 3


def test_rank_fusion():
    S = torch.tensor([[[3., 2., 1.]], [[1., 3., 2.]]])             # one query, gallery ranks (1, 2, 3) then (3, 1, 2)
    F_ = rank_fusion(S)
    assert F_[0, 0].tolist() == [-1., -2., -3.] and F_[1, 0].tolist() == [-2., -1.5, -2.5]


def test_models_shapes_and_loss():
    torch.manual_seed(0)
    B, T, N, C, V = 3, 4, 5, 8, 20
    tok = torch.randint(4, V, (B * T, 6)); ln = torch.randint(1, 7, (B * T,))
    batch = (tok, ln, torch.randn(B, N, C), torch.ones(B, N, dtype=torch.bool), torch.randn(B, C))
    for m in (DrillDown(V, C, M=2, D=6, embed_dim=5), HRE(V, C, 6, 5), HRE(V, C, 6, 5, regions=False), RRE(V, C, 6, 5), RankFusion(V, C, 6, 5)):
        S, _, _ = m(*batch)
        assert S.shape == (B, T, B)
        drilldown_loss(m, batch)['loss'].backward()
    dd = DrillDown(V, C, M=2, D=6, embed_dim=5, policy='rollout')
    out = drilldown_loss(dd, batch, policy=True)
    assert out['pol'] > 0
    _, logits, labels = dd(*batch)
    assert (labels[:, :2] == -100).all() and ((labels[:, 2:] >= 0) & (labels[:, 2:] < 2)).all()


def test_config_and_errors():
    assert DrilldownConfig.quick().T == 10 and DrilldownConfig.full().lam == 9.0 and DrilldownConfig.quick().mu == 0.1
    assert grid_boxes(4, 4, 1) == [(0., 0., 4., 4.), (0., 0., 4., 4.)]
    assert session_split(3, {3: 'test'}) == 'test' and session_split(3) in ('train', 'test')
    with pytest.raises(ErretError, match='unknown Drill-down method'): build_model('DD', None, DrilldownConfig())
