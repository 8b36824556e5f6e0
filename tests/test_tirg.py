import numpy as np, pytest, torch
from erret.core import ErretError
from erret.datasets import CSSSplit, CSSMod
from erret.losses import similarity, set_softmax_loss, all_other
from erret.tirg import (css_queries, css_positives, css_recall, two_mod_batches, tirg_loss, NormScale, TIRG, TIRGConv, Concatenate,
                        ShowAndTell, Relationship, Composer, METHODS, ABLATIONS, ALL_METHODS)


pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


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
    "Eq. 4 written with set_softmax_loss: K = 2 (M = B-1 sets) is Eq. 5, K = B is batch cross-entropy; gradients agree"
    torch.manual_seed(0); B = 6
    psi, phi = torch.randn(B, 4, requires_grad=True), torch.randn(B, 4)
    S = similarity(psi, phi, kind)
    eq4_k2 = set_softmax_loss(S.diagonal()[:, None].expand(B, B - 1), S.gather(1, all_other(B))[..., None])
    eq4_kb = set_softmax_loss(S.diagonal(), S.gather(1, all_other(B)))
    torch.testing.assert_close(eq4_k2, tirg_loss(psi, phi, 2, kind))
    torch.testing.assert_close(eq4_kb, tirg_loss(psi, phi, None, kind))
    torch.testing.assert_close(tirg_loss(psi, phi, B, kind), torch.nn.functional.cross_entropy(S, torch.arange(B)))
    g1, = torch.autograd.grad(eq4_k2, psi, retain_graph=True); g2, = torch.autograd.grad(tirg_loss(psi, phi, 2, kind), psi)
    torch.testing.assert_close(g1, g2)
    with pytest.raises(ErretError, match='expected 2'): tirg_loss(psi, phi, 3, kind)


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


def test_method_names():
    assert METHODS == ('Image only', 'Text only', 'Concatenate', 'Show and Tell', 'Attribute as Operator', 'Parameter hashing',
                       'Relationship', 'FiLM', 'TIRG')
    assert all(a.startswith('TIRG (') for a in ABLATIONS) and len(set(ALL_METHODS)) == len(ALL_METHODS)


def test_show_and_tell_and_relationship():
    torch.manual_seed(2)
    st = ShowAndTell(6, vocab_size=10, embed_dim=4)
    x, tok, ln = torch.randn(3, 6), torch.randint(1, 10, (3, 4)), torch.tensor([4, 2, 3])
    tok2 = tok.clone(); tok2[1, 2:] = 5
    torch.testing.assert_close(st(x, tok, ln), st(x, tok2, ln))          # padding ignored
    assert not torch.allclose(st(x, tok, ln)[0], st(x * 2, tok, ln)[0])  # the image is read
    rel = Relationship(4, 3)
    fx, t = torch.randn(2, 4, 3, 3), torch.randn(2, 3)
    assert rel(fx, t).shape == (2, 4)
    v = rel.cells(fx); assert v.shape == (2, 9, 6)
    torch.testing.assert_close(v[0, 4, -2:], torch.zeros(2))            # the centre cell sits at (0, 0)


@pytest.mark.parametrize('method', ALL_METHODS)
def test_composer_shapes_and_grad(method):
    net = Composer(method, vocab_size=15, c_img=6, d=8, embed_dim=5, fmap=2)
    x = torch.randn(4, 6, 3, 3); tok = torch.randint(4, 15, (4, 3)); ln = torch.tensor([3, 1, 2, 3])
    psi, phi = net(x, tok, ln, x)
    assert psi.shape == phi.shape == (4, 8)
    torch.testing.assert_close(psi.norm(dim=-1), torch.full((4,), 4.0))
    tirg_loss(psi, phi).backward()
    assert net.norm.scale.grad is not None


def test_reproduce_smoke(tmp_path):
    import json
    from erret.tirg import reproduce
    res = reproduce('smoke', seeds=[0], out=tmp_path, device='cpu', methods=('Image only', 'TIRG'))
    d = json.loads((tmp_path / 'results.json').read_text())
    assert d['paper'] == 'tirg' and [r['method'] for r in d['rows'] if r['setting'] == 'css-2d'] == ['Image only', 'TIRG']
    assert all(set(r['metrics']) == {'R@1', 'R@5', 'R@10', 'R@50'} for r in d['rows'] if r['setting'] == 'css-2d')
    by = {(r['method'], r['setting']): r['metrics'] for r in d['rows']}
    assert set(by[('TIRG', 'unseen-pairs')]) == {'accuracy'} and 0 <= by[('TIRG', 'unseen-pairs')]['accuracy'] <= 100
    rec = by[('TIRG', 'reconstruction')]                                  # the map decoder; same metrics for the pooled-ψ one
    assert {'err_to_target', 'err_to_query', 'err reference', 'err mean image', 'colour acc (reference)'} <= set(rec)
    assert set(by[('TIRG', 'reconstruction (pooled ψ)')]) == set(rec) and 0 <= rec['colour acc (reference)'] <= 100
    assert all(0 <= v <= 100 for k, v in rec.items() if k.startswith('modification'))
    assert set(d['figures']) == {'retrieval_grid.png', 'reconstruction.png'} and all((tmp_path / f).exists() for f in d['figures'])
    assert (tmp_path / 'results.md').exists() and res['dataset']['n_test'] > 0
    with pytest.raises(ErretError, match='file not found'): reproduce('smoke', data=tmp_path / 'nothing', out=tmp_path)


def test_pair_probe_and_accuracy():
    from erret.tirg import pair_probe, pair_accuracy, css_pairs, CSS_ADD, PairProbe
    from erret.datasets import CSSData
    objs = lambda *ps: [{'shape': s, 'color': c, 'size': 'small', 'pos': (0.5, 0.5)} for s, c in ps]
    tr = CSSSplit('train', [objs(('circle', 'red')), objs(('rectangle', 'blue'))], [0, 1], [], [None] * 2)
    te = CSSSplit('test', [objs(('circle', 'blue'))], [0], [], [None])
    pr = pair_probe(CSSData(None, {'train': tr, 'test': te}), cells=('middle-center',))
    assert css_pairs(tr) == {('circle', 'red'), ('rectangle', 'blue')}
    assert pr.pairs == [('circle', 'blue'), ('circle', 'red'), ('rectangle', 'blue'), ('rectangle', 'red')]
    assert pr.unseen == {('circle', 'blue'), ('rectangle', 'red')} and len(pr.probes) == 4 and len(pr.split) == 5
    assert pr.split.objects[0] == [] and pr.texts('middle-center', 'small')[0] == 'add small blue circle to middle-center'

    class Oracle(torch.nn.Module):                                       # ψ = one-hot of the text's pair, φ = one-hot of the image's
        def __init__(self): super().__init__(); self.text_ids = None
        def eval(self): return self
        def target(self, f): return f[:, :4]
        def compose(self, x, tok, ln): return torch.eye(4)
    feats = torch.cat([torch.zeros(1, 4), torch.eye(4)])                  # probe i shows pair i
    from erret.text import Vocab
    acc = pair_accuracy(Oracle(), pr, feats, Vocab.build(pr.texts('middle-center', 'small')))
    assert acc == {'unseen': 100.0, 'seen': 100.0}
    class Blind(Oracle):                                                 # every candidate ties: a random pick, 1 / 4
        def compose(self, x, tok, ln): return torch.ones(4, 4)
    assert pair_accuracy(Blind(), pr, feats, Vocab.build(pr.texts('middle-center', 'small'))) == {'unseen': 25.0, 'seen': 25.0}


def test_decoder_and_reconstruction_errors():
    from erret.tirg import Decoder, reconstruction_errors
    from erret.text import Vocab
    torch.manual_seed(0)
    net = Composer('Image only', 10, 6, d=8).eval()
    feats = torch.randn(3, 6, 2, 2); imgs = torch.rand(3, 3, 32, 32); v = Vocab.build(['a b'])
    for dec, phi in ((Decoder(8, spatial=False).eval(), net.target), (Decoder(8).eval(), net.target_map)):   # pooled vector, map
        assert dec(phi(feats)).shape == (3, 3, 32, 32)
        e = reconstruction_errors(net, dec, feats, imgs, [(0, 1, 'a b'), (2, 0, 'b')], v)
        rec = dec(phi(feats[[0, 2]]))                                        # Image only: ψ is the reference's feature
        torch.testing.assert_close(torch.tensor(e['err_to_query']), 255 * (rec - imgs[[0, 2]]).abs().mean())     # grey levels
        torch.testing.assert_close(torch.tensor(e['err_to_target']), 255 * (rec - imgs[[1, 0]]).abs().mean())


@pytest.mark.parametrize('method', ['Image only', 'TIRG', 'FiLM', 'Concatenate'])
def test_feature_maps_average_to_the_pooled_features(method):
    net = Composer(method, vocab_size=15, c_img=6, d=8, embed_dim=5, fmap=2).eval()
    x = torch.randn(4, 6, 4, 4); tok = torch.randint(4, 15, (4, 3)); ln = torch.tensor([3, 1, 2, 3])
    with torch.no_grad():
        torch.testing.assert_close(net.target_map(x).mean((2, 3)), net.target(x))
        torch.testing.assert_close(net.compose_map(x, tok, ln).mean((2, 3)), net.compose(x, tok, ln))


def test_colour_accuracy_and_modification_visible():
    from erret.tirg import colour_accuracy, modification_visible, css_modification, small_images
    objs = lambda *os_: [{'shape': s, 'color': c, 'size': z, 'pos': p} for s, c, z, p in os_]
    a = ('circle', 'red', 'large', (0.5, 0.5)); b = ('rectangle', 'blue', 'small', (0.2, 0.8))
    sp = CSSSplit('t', [objs(a, b), objs(a[:1] + ('yellow',) + a[2:], b), objs(a, b[:2] + ('large',) + b[3:]),
                        objs(a), objs(a, b, ('triangle', 'green', 'small', (0.8, 0.2)))], [0, 1, 2, 3, 4], [], [None] * 5)
    im = small_images(sp)
    assert colour_accuracy(im, sp) == 100 and colour_accuracy(torch.ones_like(im), sp) == 0
    q = [(0, 1, 'make red circle yellow'), (0, 2, 'make blue square large'), (0, 4, 'add ...'), (0, 3, 'remove ...')]
    assert [css_modification(sp, s, t)[0] for s, t, _ in q] == ['colour', 'size', 'add', 'remove']
    assert modification_visible(im[[1, 2, 4, 3]], sp, q, im) == {'colour': 100., 'size': 100., 'add': 100., 'remove': 100.}
    assert modification_visible(im[[0, 0, 0, 0]], sp, q, im) == {'colour': 0., 'size': 0., 'add': 0., 'remove': 0.}


def test_fashion_and_mit_states_queries():
    from pathlib import Path
    import erret
    from erret.datasets import FashionItem, load_mit_states
    from erret.tirg import one_word_pairs, fashion_split, mit_states_split, load_tirg_data, noun_split
    assert one_word_pairs(['a b c', 'a x c', 'a b', 'y b c']) == [(0, 1, 'replace b with x'), (0, 3, 'replace a with y'),
                                                                (1, 0, 'replace x with b'), (3, 0, 'replace y with a')]
    items = [FashionItem(Path(f'{i}.jpg'), 1., d, 'top', 'train') for i, d in enumerate(['white silk blouse', 'black silk blouse', 'white silk blouse'])]
    sp = fashion_split(items, 'train')
    assert sp.labels[0] == sp.labels[2] != sp.labels[1]
    assert sorted(sp.queries()) == [(0, 1, 'replace white with black'), (1, 0, 'replace black with white')]
    fix = Path(erret.__file__).resolve().parent.parent / 'data' / 'datasets'
    ms = load_mit_states(fix / 'mit_states')
    sp = mit_states_split(ms.items)
    assert len(sp.queries()) == 3 and all(ms.items[t].adj == text for _, t, text in sp.queries())
    assert all(ms.items[s].noun == ms.items[t].noun and ms.items[s].adj != ms.items[t].adj for s, t, _ in sp.queries())
    data, setting = load_tirg_data(fix / 'mit_states')
    assert setting == 'mit-states' and set(data.splits) == {'train', 'test'}
    assert len(noun_split(range(20))) == 4 and noun_split(range(20), seed=1) != noun_split(range(20), seed=2)
    assert load_tirg_data(fix / 'fashion200k')[1] == 'fashion200k' and load_tirg_data(fix / 'css')[1] == 'css-2d'
    with pytest.raises(ErretError, match='file not found'): load_tirg_data(fix / 'nope')
