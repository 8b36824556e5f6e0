"Tests of erret.text2scene: attention shapes, the ConvGRU step, greedy decoding and <eos>, the matching metric, data, a small fit"
import math
from pathlib import Path
import numpy as np, pytest, torch
import torch.nn.functional as F
import erret
from erret.core import ErretError
from erret.text import Vocab, pad_batch, length_mask
from erret.text2scene import (Text2SceneConfig, SceneLayout, T2SData, Text2Scene, ConvGRUCell, SpatialAttention, TextAttention,
                              GeneratedScene, BagOfObjects, collate_scenes, render_canvas, drawing_order, generate, scene_scores,
                              layout_metrics, gaussian_sim, attention_penalty, text2scene_loss, load_text2scene, train_text2scene,
                              METRICS, IGNORE)

FIX = Path(erret.__file__).resolve().parent.parent / 'data' / 'datasets'


pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


def _toy(n=12):
    "Hand-made data: 3 categories, one attribute; text names the objects"
    names = ['circle', 'square', 'star']
    rng = np.random.default_rng(0); scenes = []
    for i in range(n):
        k = 1 + i % 3; cl = [int(c) for c in rng.integers(0, 3, k)]
        bx = np.array([[x, y, x + .2, y + .2] for x, y in rng.uniform(0, .8, (k, 2))])
        o = drawing_order(bx, cl, 4)
        scenes.append(SceneLayout(i, ' and '.join(f'a {names[cl[j]]}' for j in o), [cl[j] for j in o], bx[o], np.zeros((k, 1), int)))
    d = T2SData(Path('.'), 'toy', names, {'size': ('small', 'large')}, False, {'train': scenes, 'test': scenes[:4]})
    d.vocab = Vocab.build(s.text for s in scenes); d.wh = {(c, None): (.2, .2) for c in range(3)}
    return d


def _model(d, history=True):
    torch.manual_seed(0)
    return Text2Scene(len(d.vocab), len(d.categories), [2], G=4, d_embed=8, d_hidden=6, d_state=5, history=history)


def test_attention_shapes():
    sa, ta = SpatialAttention(6), TextAttention(5, 9, 4)
    u, a = sa(torch.randn(3, 6, 4, 4))
    assert u.shape == (3, 6) and a.shape == (3, 16) and torch.allclose(a.sum(-1), torch.ones(3))
    mask = length_mask(torch.tensor([7, 2, 5]))
    c, a = ta(torch.randn(3, 5), torch.randn(3, 7, 9), mask)
    assert c.shape == (3, 9) and a.shape == (3, 7) and torch.allclose(a.sum(-1), torch.ones(3))
    assert (a[~mask] == 0).all()                                                       # no weight on padding
    d = _toy(); b = collate_scenes(d.splits['train'][:5], d.vocab, 3, 4)
    o = _model(d)(*b[:5])
    B, S, L = 5, b[3].shape[1], b[0].shape[1]
    assert o['obj'].shape == (B, S, 4) and o['loc'].shape == (B, S, 16) and o['attr'].shape == (B, S, 2, 16)
    assert o['attn_o'].shape == (B, S, L) == o['attn_a'].shape
    assert torch.allclose(o['attn_o'].sum(-1), torch.ones(B, S), atol=1e-5)


def test_convgru_step():
    cell, ref = ConvGRUCell(4, 3, k=1), torch.nn.GRUCell(4, 3)
    with torch.no_grad():
        ref.weight_ih.copy_(cell.wx.weight[:, :, 0, 0]); ref.bias_ih.copy_(cell.wx.bias)
        ref.weight_hh.copy_(cell.wh.weight[:, :, 0, 0]); ref.bias_hh.copy_(cell.wh.bias)
    x, h = torch.randn(2, 4), torch.randn(2, 3)
    assert torch.allclose(cell(x[..., None, None], h[..., None, None])[..., 0, 0], ref(x, h), atol=1e-5)
    c = ConvGRUCell(4, 3, k=3, k_in=1)
    h1 = c(torch.randn(2, 4, 5, 5), torch.zeros(2, 3, 5, 5))
    assert h1.shape == (2, 3, 5, 5) and h1.abs().max() < 1                              # from 0, a convex mix with tanh: |h| < 1
    assert torch.allclose(c.step(c.wx(torch.ones(1, 4, 5, 5)), h1[:1]), c(torch.ones(1, 4, 5, 5), h1[:1]))
    d = _toy(); m0 = _model(d, history=False)                                           # no history: the previous state is ignored
    cv, h0 = torch.zeros(1, 3, 4, 4), torch.zeros(1, 5, 4, 4)
    assert torch.allclose(m0.state(cv, torch.randn(1, 5, 4, 4), h0), m0.state(cv, h0, h0))


class _Scripted(Text2Scene):
    script = ()
    def objects(self, h, prev, words, mask, keys=None):
        lo, c, a = super().objects(h, prev, words, mask, keys)
        t = self.calls = getattr(self, 'calls', 0) + 1
        k = self.script[t - 1] if t - 1 < len(self.script) else self.C
        return F.one_hot(torch.full((h.shape[0],), k), self.C + 1).float() * 10, c, a


def test_greedy_decoding_stops_at_eos():
    d = _toy(); tok, L = pad_batch([d.vocab.encode(s.text) for s in d.splits['test']])
    m = _Scripted(len(d.vocab), 3, [2], G=4, d_embed=8, d_hidden=6, d_state=5)
    m.script = (2, 0, 1)
    g = generate(m, tok, L, d, max_steps=10)
    assert [x.classes for x in g] == [[2, 0, 1]] * 4 and m.calls == 4                  # 3 objects, <eos> at the 4th step, stop
    assert all(len(x.boxes) == len(x.attrs) == len(x.attn_o) == 3 for x in g)
    m.calls, m.script = 0, ()
    assert [len(x) for x in generate(m, tok, L, d)] == [0] * 4 and m.calls == 1
    m.calls, m.script = 0, (1,) * 99
    assert [len(x) for x in generate(m, tok, L, d, max_steps=2)] == [2] * 4            # never <eos>: cut at max_steps


def test_matching_metric_hand_made():
    gb = [(.1, .1, .3, .3), (.25, .3, .45, .5), (.7, .7, .9, .9)]; gc = [0, 1, 0]; ga = [[1], [0], [1]]
    r = scene_scores(gc, gb, ga, gc, gb, ga)
    assert all(r[k] == pytest.approx(1.) for k in ('U-obj P', 'U-obj R', 'U-obj coord', 'B-obj P', 'B-obj R', 'B-obj coord'))
    r = scene_scores([0], [(.7, .8, .9, 1.)], [[0]], gc, gb, ga)                       # one circle, 0.1 below the second one
    assert r['U-obj P'] == 1 and r['U-obj R'] == pytest.approx(1 / 3)
    assert r['U-obj coord'] == pytest.approx(math.exp(-0.5 * 0.01 / 0.04)) and (r['attr_hits'], r['attr_n']) == (0, 1)
    assert r['B-obj P'] == 0 and r['B-obj R'] == 0                                     # a single object has no bigram
    r = scene_scores([2, 2], gb[:2], [[1], [0]], gc, gb, ga)
    assert r['U-obj P'] == r['U-obj R'] == r['U-obj coord'] == 0
    far = [(.0, .0, .1, .1), (.9, .9, 1., 1.)]                                         # no related pair in the ground truth
    r = scene_scores([0, 1], far, [[0], [0]], [0, 1], far, [[0], [0]])
    assert r['B-obj R'] is None
    assert gaussian_sim((0, 0), (0.2, 0)) == pytest.approx(math.exp(-0.5))
    m = layout_metrics([GeneratedScene(gc, gb, ga), GeneratedScene([], [], [])],
                       [SceneLayout(0, '', gc, np.array(gb), np.array(ga))] * 2)
    assert list(m) == list(METRICS) and m['U-obj R'] == pytest.approx(50.) and m['Attr acc'] == pytest.approx(100.)
    assert 'Attr acc' not in layout_metrics([GeneratedScene(gc, gb, ga)], [SceneLayout(0, '', gc, np.array(gb), np.array(ga))], attributes=False)


def test_canvas_and_collate():
    cv = render_canvas([1], [(0., 0., .5, .5)], 2, 4)
    assert cv[1, :2, :2].sum() == 4 and cv.sum() == 4
    d = _toy(); s = d.splits['train'][2]
    tok, L, canv, prev, obj, loc, att = collate_scenes([s], d.vocab, 3, 4)
    n = len(s)
    assert obj[0, n] == 3 and prev[0, 0] == 4 and (obj[0, :n] == torch.tensor(s.classes)).all()
    assert torch.equal(canv[0, n], render_canvas(s.classes, s.boxes, 3, 4)) and canv[0, 0].sum() == 0
    assert (loc[0, n:] == IGNORE).all() and (loc[0, :n] >= 0).all()


def test_loss_and_attention_penalty():
    a = torch.tensor([[[1., 0.], [1., 0.]]])                                         # word 0 attended twice, word 1 never
    assert attention_penalty(a, torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool)).item() == pytest.approx(2.)
    d = _toy(); b = collate_scenes(d.splits['train'][:6], d.vocab, 3, 4)
    out = text2scene_loss(Text2SceneConfig.smoke())(_model(d), b)
    assert out['loss'].requires_grad and out['obj'].item() == pytest.approx(math.log(4), abs=0.4)


def test_bag_of_objects():
    d = _toy(30); bag = BagOfObjects(d, min_count=2)
    assert bag.lexicon['circle'] == 0 and bag.lexicon['star'] == 2 and 'a' not in bag.lexicon
    g = bag('a star and a star . a circle')
    assert sorted(g.classes) == [0, 2, 2]
    assert np.allclose(((g.boxes[0][0] + g.boxes[0][2]) / 2), bag.pos[g.classes[0]][0])


def test_load_fixture_layout_variant(tmp_path):
    d = load_text2scene(Text2SceneConfig.smoke(), FIX / 'coco')
    assert d.layout and list(d.attributes) == ['scale', 'ratio'] and d.categories == ['person', 'motorcycle', 'cake']
    s = d.splits['test'][0]
    assert s.image_id == 391895 and len(s) == 3 and s.attrs.shape == (3, 2) and s.boxes.max() <= 1
    assert s.text.count(' . ') == 2                                                     # 3 of its 7 captions
    assert drawing_order(s.boxes, s.classes, 6) == [0, 1, 2]
    (tmp_path / 'annotations').mkdir()                                                  # captions without instances: one clear error
    (tmp_path / 'annotations' / 'captions_val2014.json').write_text((FIX / 'coco' / 'annotations' / 'captions_val2014.json').read_text())
    with pytest.raises(ErretError, match='no instances_'): load_text2scene(Text2SceneConfig.smoke(), tmp_path)


def test_small_fit_learns_objects(tmp_path, monkeypatch):
    monkeypatch.setenv('ERRET_DATA', str(tmp_path))
    cfg = Text2SceneConfig.smoke().replace(epochs=8, n_images=200, batch_size=8, lr=5e-3)
    d = load_text2scene(cfg)
    assert d.splits['train'] and d.splits['test'] and not d.layout
    m = train_text2scene(d, cfg, 0)
    h = m.history
    assert h[-1]['train_obj'] < 0.75 * h[0]['train_obj']                                # the object NLL falls clearly
    tok, L = pad_batch([d.vocab.encode(s.text) for s in d.splits['test']])
    r = layout_metrics(generate(m, tok, L, d), d.splits['test'])
    assert r['U-obj P'] > 25 and r['U-obj R'] > 25                                      # a random category is right 1 time in 8 (12.5 %)
