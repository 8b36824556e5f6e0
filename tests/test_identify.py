"Tests for erret.identify: batches, the CNN + ReLU-LSTM model and its EB maps, the baseline, pairwise accuracy, R@K, pointing examples."
import numpy as np
import pytest
import torch
from torch import nn

from erret.core import ErretError
from erret.datasets import write_coco
from erret.encoders import normalize
from erret.excitation import ExcitationBackprop, temporal_saliency
from erret.text import Vocab, pad_batch
from erret.world import World, WorldConfig
from erret.identify import (IdentifyConfig, IdentifyNet, ShowAndTell, captioner_loss, collate_captions, explain, gallery_recall,
                            half_negative, mean_embedding, pairwise_accuracy, pointing_accuracy, pointing_examples,
                            read_coco_split, validation_pairs, word_maps)

torch.set_num_threads(1)


def small_net(V=20):
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU()).eval()
    return IdentifyNet(body, 16, V, 12, 10).eval()


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp('coco')
    w = World(WorldConfig(n_images=30, seed=3)); write_coco(d, w)
    D = read_coco_split(d, 64); D.world = w
    return D


def test_presets():
    assert IdentifyConfig.full().arch == 'vgg16' and IdentifyConfig.full().d_embed == 300
    assert IdentifyConfig().batch_size % 2 == 0 and IdentifyConfig.smoke().gallery < IdentifyConfig().gallery


def test_half_negative_labels():
    use, y = half_negative(torch.tensor([1, 2, 3, 4]))
    assert use.tolist() == [1, 2, 2, 3] and y.tolist() == [1, 1, 0, 0]
    rows, tok, L = collate_captions([(0, [5, 6]), (1, [7, 8, 9])])
    assert tok.shape == (2, 3) and L.tolist() == [2, 3]


def test_model_padding_and_eb_mass():
    net = small_net()
    img, tok, L = normalize(torch.rand(3, 3, 32, 32)), torch.randint(4, 20, (3, 5)), torch.tensor([5, 2, 1])
    s = net(img, tok, L)
    torch.testing.assert_close(net(img[1:2], tok[1:2, :2], L[1:2]), s[1:2], atol=1e-5, rtol=1e-5)
    sp, m0, mw = explain(net, img, tok, L)
    assert sp.shape == (3, 32, 32) and (sp >= 0).all()
    torch.testing.assert_close(m0 + mw.sum(1), torch.ones(3), atol=1e-4, rtol=0)
    assert mw[1, 2:].abs().sum() == 0
    wm = word_maps(net, img[0], tok[0])
    torch.testing.assert_close(wm[-1], sp[0], atol=1e-5, rtol=1e-4)


def test_captioner_learns_and_baseline_embedding():
    torch.manual_seed(0)
    fm, cap = torch.rand(2, 16, 4, 4), ShowAndTell(16, 12, 24)
    target = [[4, 5, 6, 7], [8, 9]]
    tok, L = pad_batch(target); opt = torch.optim.Adam(cap.parameters(), 1e-2)
    for _ in range(150):
        loss = captioner_loss(fm)(cap, (torch.tensor([0, 1]), tok, L)); opt.zero_grad(); loss.backward(); opt.step()
    assert cap.generate(fm, 6) == target
    E = torch.eye(3)
    torch.testing.assert_close(mean_embedding([[0, 1], []], E), torch.tensor([[.5, .5, 0], [0, 0, 0]]))


def test_pairwise_and_gallery_with_oracle(tiny):
    D = tiny
    D2 = type(D)(D.images, [[f'w{k} w{k}'] * 5 for k in range(len(D.images))], D.image_ids, D.split,
                 Vocab.build([f'w{k}' for k in range(len(D.images))]))
    row_of = {D2.vocab[f'w{k}']: k for k in range(len(D.images))}
    oracle = lambda rows, ids: torch.tensor([float(row_of[i[0]] == r) for r, i in zip(rows, ids)])
    pairs = validation_pairs(D2, 3, 8)
    assert pairs == validation_pairs(D2, 3, 8) and all(a != b for a, b, _ in pairs)
    assert pairwise_accuracy(oracle, D2, pairs) == 100.0
    assert pairwise_accuracy(lambda r, i: torch.zeros(len(r)), D2, pairs) == 50.0
    assert gallery_recall(oracle, D2, split='train')['R@1'] == 100.0


def test_pointing_examples_and_accuracy(tiny):
    ex = pointing_examples(tiny)
    assert ex and all(e.row in tiny.split['val'] and len(e.boxes) >= 1 for e in ex)
    assert len(pointing_examples(tiny, n=2)) == 2
    net = small_net(len(tiny.vocab))
    acc = pointing_accuracy(net, tiny, ex[:4], batch=2)
    assert set(acc) == {'EB', 'c-MWP', 'Gradient', 'Grad-CAM', 'Center', 'phrase-contrastive EB'} and all(0 <= v <= 100 for v in acc.values())
    tiny2 = type(tiny)(tiny.images, tiny.captions, tiny.image_ids, tiny.split, tiny.vocab)
    with pytest.raises(ErretError, match='object boxes'): pointing_examples(tiny2)


def test_bad_folder(tmp_path):
    from erret.identify import load_identify
    with pytest.raises(ErretError, match='not a COCO captions folder'): load_identify(IdentifyConfig.smoke(), data=tmp_path)


def test_reproduce_smoke_on_a_coco_folder(tmp_path):
    from erret.identify import reproduce
    write_coco(tmp_path / 'coco', World(WorldConfig(n_images=60, seed=4)))
    res = reproduce('smoke', data=tmp_path / 'coco', out=tmp_path / 'out', device='cpu', log=lambda *a: None)
    assert {(r['method'], r['setting']) for r in res['rows']} == {(m, s) for m in ('Baseline', 'Proposed') for s in ('pairwise', 'gallery-1k')}
    assert res['dataset']['name'] == 'coco' and (tmp_path / 'out' / 'results.json').exists()
    assert all(0 <= r['metrics']['accuracy'] <= 100 for r in res['rows'] if r['setting'] == 'pairwise')
