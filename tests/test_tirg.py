import numpy as np, pytest, torch
from erret.core import ErretError
from erret.datasets import CSSSplit, CSSMod
from erret.tirg import (css_queries, css_positives, css_recall, two_mod_batches, similarity, set_softmax_loss, all_other,
                        soft_triplet_loss, batch_classification_loss, NormScale, TIRG, TIRGConv, Concatenate, Composer, METHODS)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Tiny models: one thread avoids oversubscription on a shared 2-core machine"
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _split():
    "6 images; images 2 and 5 are identical scenes (same label)"
    return CSSSplit('test', [[]] * 6, [0, 1, 2, 3, 4, 2], [CSSMod([0, 1], [2, 3], 'add red circle'), CSSMod([0], [4], 'remove cube')], [None] * 6)


def test_queries_and_positives():
    sp = _split(); q = css_queries(sp)
    assert q == [(0, 2, 'add red circle'), (1, 3, 'add red circle'), (0, 4, 'remove cube')]
    P = css_positives(sp, q)
    assert P[0].tolist() == [False, False, True, False, False, True]     # identical scene 5 counts
    assert not P[torch.arange(3), [0, 1, 0]].any()                        # own source excluded
    with pytest.raises(ErretError, match='no modification queries'): css_queries(CSSSplit('x', [], [], [], []))


def test_recall_protocol_and_permutation():
    sp = _split(); q = css_queries(sp)
    s = torch.zeros(3, 6)
    s[0, 0], s[0, 5] = 9., 5.          # source first (skipped), then an identical scene of the target: hit
    s[1, 2], s[1, 3] = 9., 5.          # a wrong image first: miss at 1, hit at 5
    s[2, 4] = 1.
    r = css_recall(s, sp, q, ks=(1, 5))
    assert r == {'R@1': pytest.approx(200 / 3), 'R@5': 100.}
    with pytest.raises(ErretError, match='expected'): css_recall(torch.zeros(2, 6), sp, q)
    rng = torch.Generator().manual_seed(0); S = torch.rand(3, 6, generator=rng); perm = torch.randperm(6, generator=rng)
    inv = torch.argsort(perm)
    sp2 = CSSSplit('test', [[]] * 6, [sp.labels[i] for i in perm.tolist()],
                   [CSSMod([int(inv[i]) for i in m.source_ids], [int(inv[i]) for i in m.target_ids], m.text) for m in sp.mods], [None] * 6)
    assert css_recall(S, sp, q, ks=(1, 2, 3)) == css_recall(S[:, perm], sp2, css_queries(sp2), ks=(1, 2, 3))


def test_two_mod_sampler():
    q = [(0, 1, 'a'), (0, 2, 'b'), (0, 3, 'c'), (0, 4, 'd'), (5, 6, 'a'), (5, 7, 'a')]
    bs = list(two_mod_batches(q, 2, seed=3, drop_last=False))
    for b in bs:
        if q[b[0]][0] == q[b[1]][0]: assert q[b[0]][2] != q[b[1]][2]
    assert sum(q[b[0]][0] == q[b[1]][0] for b in bs) == 2
    assert all(len(b) == 4 for b in two_mod_batches(q, 4))
    with pytest.raises(ErretError, match='even'): next(two_mod_batches(q, 5))


@pytest.mark.parametrize('kind', ['dot', 'l2'])
def test_loss_identities(kind):
    torch.manual_seed(0); B = 6
    psi, phi = torch.randn(B, 4), torch.randn(B, 4)
    torch.testing.assert_close(set_softmax_loss(psi, phi, all_other(B)[:, :, None], kind), soft_triplet_loss(psi, phi, kind))
    torch.testing.assert_close(set_softmax_loss(psi, phi, all_other(B)[:, None, :], kind), batch_classification_loss(psi, phi, kind))
    S = similarity(psi, phi, kind)
    torch.testing.assert_close(batch_classification_loss(psi, phi, kind), torch.nn.functional.cross_entropy(S, torch.arange(B)))


def test_tirg_equations():
    torch.manual_seed(1); m = TIRG(3, 2).eval()
    x, t = torch.randn(5, 3), torch.randn(5, 2)
    c = torch.cat([x, t], 1) / (1 + 1e-5) ** 0.5
    g = torch.sigmoid(m.W_g2(torch.relu(m.W_g1(c)))); r = m.W_r2(torch.relu(m.W_r1(c)))
    torch.testing.assert_close(m(x, t), g * x + 10 * r)
    assert (m.w_g.item(), m.w_r.item()) == (1.0, 10.0)
    assert TIRGConv(3, 2)(torch.randn(2, 3, 4, 4), torch.randn(2, 2)).shape == (2, 3, 4, 4)
    assert Concatenate(3, 2)(x, t).shape == (5, 3)
    assert NormScale().scale.item() == 4.0


@pytest.mark.parametrize('method', METHODS)
def test_composer_shapes_and_grad(method):
    net = Composer(method, vocab_size=15, c_img=6, d=8, embed_dim=5)
    x = torch.randn(4, 6, 3, 3); tok = torch.randint(4, 15, (4, 3)); ln = torch.tensor([3, 1, 2, 3])
    psi, phi = net(x, tok, ln, x)
    assert psi.shape == phi.shape == (4, 8)
    torch.testing.assert_close(psi.norm(dim=-1), torch.full((4,), 4.0))
    batch_classification_loss(psi, phi).backward()
    assert net.norm.scale.grad is not None


def test_reproduce_smoke(tmp_path):
    import json
    from erret.tirg import reproduce
    res = reproduce('smoke', seeds=[0], out=tmp_path, device='cpu', methods=('Image only', 'TIRG'))
    d = json.loads((tmp_path / 'results.json').read_text())
    assert d['paper'] == 'tirg' and [r['method'] for r in d['rows']] == ['Image only', 'TIRG']
    assert all(r['setting'] == 'css-2d' and set(r['metrics']) == {'R@1', 'R@5', 'R@10', 'R@50'} for r in d['rows'])
    assert (tmp_path / 'results.md').exists() and res['dataset']['n_test'] > 0
    with pytest.raises(ErretError, match='file not found'): reproduce('smoke', data=tmp_path / 'nothing', out=tmp_path)
