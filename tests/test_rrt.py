"Tests of erret.rrt: token construction, reranking of a hand-made top-k list, αQE, the evaluation protocol, the data round trip"
import math
from pathlib import Path
import numpy as np, pytest, torch
import torch.nn.functional as F
from erret.core import ErretError
from erret.world import World, view_level
from erret.datasets import write_roxford, load_roxford, load_gldv2, RevisitedData
from erret.rrt import (rrt_tokens, RRT, rerank, alpha_qe, evaluate, pair_pool, PairSampler, sine_position, locals_of, GlobalHead,
                       SEG_CLS, SEG_SEP, SEG_QG, SEG_QL, SEG_CG, SEG_CL)


pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


def _desc(B, L, d, g, l, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {'g': torch.full((B, d), g), 'local': torch.full((B, L, d), l), 'pos': torch.rand(B, L, 2, generator=gen),
            'scale': torch.randint(3, (B, L), generator=gen)}


def test_token_order_segments_shapes():
    B, L, d = 3, 5, 4
    q, c = _desc(B, L, d, 1., 2.), _desc(B, L, d, 3., 4., seed=1)
    t = rrt_tokens(q, c)
    T = 2 * L + 4
    assert t['desc'].shape == (B, T, d) and t['segment'].shape == (B, T) and t['scale'].shape == (B, T) and t['pos'].shape == (B, T, 2)
    assert t['desc'][:, :, 0].tolist() == [[0., 1.] + [2.] * L + [0., 3.] + [4.] * L] * B          # [CLS, g_q, l_q, SEP, g_c, l_c]
    assert t['segment'][0].tolist() == [SEG_CLS, SEG_QG] + [SEG_QL] * L + [SEG_SEP, SEG_CG] + [SEG_CL] * L
    assert (t['scale'][:, [0, 1, L + 2, L + 3]] == -1).all()                                         # no scale off the locals
    assert torch.equal(t['scale'][:, 2:L + 2], q['scale']) and torch.equal(t['scale'][:, L + 4:], c['scale'])
    assert torch.equal(t['pos'][:, L + 4:], c['pos'])
    m = RRT(d, 8, 1, 2, 16, n_scales=3).eval()
    assert m(q, c).shape == (B,)
    assert not m.encoder.layers[0].norm_first                                                        # post-norm


def test_rrt_is_order_free_over_locals_and_sees_the_pair():
    torch.manual_seed(0)
    B, L, d = 2, 4, 8
    q = {'g': F.normalize(torch.randn(B, d), dim=-1), 'local': F.normalize(torch.randn(B, L, d), dim=-1), 'pos': torch.rand(B, L, 2), 'scale': torch.randint(3, (B, L))}
    c = {k: v.flip(0) for k, v in q.items()}
    m = RRT(d, 8, 2, 2, 16).eval()
    perm = torch.randperm(L)
    qp = {**q, **{k: q[k][:, perm] for k in ('local', 'pos', 'scale')}}
    torch.testing.assert_close(m(q, c), m(qp, c), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(m(q, c), m(q, q))


def test_rerank_only_top_k():
    s = torch.tensor([[.9, .8, .7, .6, .5, .4], [.1, .2, .3, .4, .5, .6]])
    _, tk = s.topk(3)
    new = torch.tensor([[.1, .5, .3], [1., 2., 3.]])                 # row 1: top-3 are items 5, 4, 3 -> new order 3, 4, 5
    r = rerank(s, tk, new)
    assert r.argsort(descending=True)[0].tolist() == [1, 2, 0, 3, 4, 5]
    assert r.argsort(descending=True)[1].tolist() == [3, 4, 5, 2, 1, 0]
    mask = torch.ones_like(s, dtype=torch.bool).scatter_(1, tk, False)
    assert torch.equal(r[mask], s[mask])                              # below the top-k: untouched


def test_alpha_qe_hand_case():
    db = F.normalize(torch.tensor([[1., 1], [0, 1], [-1, 0]]), dim=-1)
    q = torch.tensor([[1., 0]])
    w = (1 / math.sqrt(2)) ** 3                                      # sim^α of the nearest neighbour
    expect = F.normalize(torch.tensor([[1 + w / math.sqrt(2), w / math.sqrt(2)]]), dim=-1)
    torch.testing.assert_close(alpha_qe(q, db, n=1, alpha=3.), expect)
    torch.testing.assert_close(alpha_qe(q, db, n=2, alpha=3.), expect)   # second neighbour: similarity 0, no weight
    torch.testing.assert_close(alpha_qe(q, db, n=1, alpha=0.), F.normalize(q + db[:1], dim=-1))


def test_evaluate_protocols():
    toy = RevisitedData(Path('.'), 'toy', ['a', 'b', 'c', 'd'], ['q'], [{'bbx': [0, 0, 1, 1], 'easy': [0], 'hard': [2], 'junk': [1]}])
    e = evaluate(torch.tensor([[.9, .95, .5, .1]]), toy)             # junk first is ignored
    assert e['medium'] == pytest.approx(100.) and e['hard'] == pytest.approx(100.) and e['R@1'] == 100.
    e = evaluate(torch.tensor([[.2, .95, .5, .9]]), toy)
    assert e['R@1'] == 0. and e['R@10'] == 100. and e['medium'] < 100 and e['hard'] < 100


def test_pair_pool_and_locals():
    g = F.normalize(torch.tensor([[1., 0], [.9, .1], [0, 1], [.1, .9], [.7, .7]]), dim=-1)
    P, N = pair_pool(g, [0, 0, 1, 1, 0], k=2)
    assert (P[0], N[0]) == ([1, 4], []) and (P[2], N[2]) == ([3], [4])
    a, p, n = PairSampler(P, N)[0]
    assert p in P[a] and n in N[a]
    with pytest.raises(ErretError, match='no training anchor'): PairSampler([[1]], [[]])
    maps = [torch.rand(2, 6, 2, 2), torch.rand(2, 6, 3, 3)]
    maps[0][1, :, 0, 1] = 9.
    loc = locals_of(GlobalHead(6, 4), maps, 3)
    assert loc['local'].shape == (2, 3, 4) and loc['scale'][1, 0] == 0 and torch.allclose(loc['pos'][1, 0], torch.tensor([.75, .25]))
    assert sine_position(torch.rand(3, 5, 2), 8).shape == (3, 5, 8)


def test_roxford_round_trip(tmp_path):
    w = World(n_images=24, seed=2, split_fracs=(0.6, 0.2, 0.2))
    info = write_roxford(tmp_path, w, n_views=3)
    rox, gld = load_roxford(tmp_path), load_gldv2(tmp_path)
    tests = [k for k in range(24) if w.split(k) == 'test']
    assert tests and not rox.repairs                                  # queries to check; a clean world needs no repair
    assert len(rox.qimlist) == len(tests) == info['n_queries'] and len(gld) == info['n_train']
    for q, k in enumerate(tests):
        for j, v in enumerate(w.views(k, 3)):
            assert rox.imlist.index(f'scene{k:05d}_v{j}') in rox.gnd[q][view_level(v)]
    e = evaluate(torch.rand(len(tests), len(rox)), rox)
    assert e['R@100'] == 100. or (math.isnan(e['R@100']) and not any(g['easy'] + g['hard'] for g in rox.gnd))
