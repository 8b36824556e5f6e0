"Tests for erret.encoders: backbones, offline ImageNet weights, RoIAlign, text encoders, word vectors."
from pathlib import Path
import pytest, torch, torchvision
import torch.nn as nn
from hypothesis import given, settings, strategies as st
from erret.core import ErretError
from erret.text import Vocab, pad_batch, length_mask, PAD_IDX
from erret.encoders import (IMAGENET_MEAN, IMAGENET_STD, normalize, SmallCNN, ResNet18Backbone, VGG16Backbone,
                            get_backbone, BACKBONES, imagenet_weights_path, roi_features, BagEncoder, LSTMEncoder,
                            GRUEncoder, SelfAttentionEncoder, load_word_vectors, embedding_from_vectors)

DATA = Path(__file__).resolve().parent.parent / 'data' / 'encoders'


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(old)


def test_small_cnn_shapes():
    m = get_backbone('small').eval()
    x = torch.rand(3, 3, 64, 64)
    assert m.features(x).shape == (3, 256, 8, 8) and m(x).shape == (3, 256)
    assert (m.stride, m.out_channels, m.out_dim) == (8, 256, 256)
    assert SmallCNN(widths=(16, 32, 64), strides=(2, 2, 2)).features(torch.rand(1, 3, 96, 64)).shape == (1, 64, 12, 8)


def test_torchvision_backbones_shapes():
    x = torch.rand(1, 3, 64, 64)
    r = get_backbone('resnet18').eval()
    assert r.features(x).shape == (1, 512, 2, 2) and r(x).shape == (1, 512) and r.stride == 32
    v = get_backbone('vgg16').eval()
    assert v.features(x).shape == (1, 512, 4, 4) and v(x).shape == (1, 512) and v.stride == 16
    assert set(BACKBONES) >= {'small', 'resnet18', 'vgg16'}
    with pytest.raises(ErretError, match='unknown backbone'): get_backbone('nope')


def test_normalize():
    x = torch.rand(2, 3, 4, 4)
    y = normalize(x)
    for c in range(3): assert torch.allclose(y[:, c], (x[:, c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c])


def test_pretrained_missing_is_a_clear_error(hub_dir):
    for arch, cls in (('resnet18', ResNet18Backbone), ('vgg16', VGG16Backbone)):
        p = imagenet_weights_path(arch)
        assert p.parent == hub_dir / 'checkpoints'
        with pytest.raises(ErretError) as e: cls(pretrained=True)
        msg = str(e.value)
        assert p.name in msg and str(p.parent) in msg and f"torchvision.models.{arch}(weights='DEFAULT')" in msg
        assert '\n' not in msg


def test_pretrained_loads_from_hub_cache(hub_dir):
    ref = torchvision.models.resnet18(weights=None)
    (hub_dir / 'checkpoints').mkdir()
    torch.save(ref.state_dict(), imagenet_weights_path('resnet18'))
    got = get_backbone('resnet18', pretrained=True)
    for (k, a), b in zip(got.body.state_dict().items(), [v for k, v in ref.state_dict().items() if not k.startswith('fc.')]):
        assert torch.equal(a, b), k
    imagenet_weights_path('resnet18').write_bytes(b'garbage')
    with pytest.raises(ErretError, match='could not read'): get_backbone('resnet18', pretrained=True)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_roi_features_is_crop_mean_for_cell_aligned_boxes(data):
    H, W, s = 6, 7, 4
    fmap = torch.randn(2, 3, H, W)
    boxes, crops = [], []
    for b in range(2):
        bb = []
        for _ in range(data.draw(st.integers(0, 3))):
            x0 = data.draw(st.integers(0, W - 1)); x1 = data.draw(st.integers(x0 + 1, W))
            y0 = data.draw(st.integers(0, H - 1)); y1 = data.draw(st.integers(y0 + 1, H))
            bb.append([x0 * s, y0 * s, x1 * s, y1 * s]); crops.append(fmap[b, :, y0:y1, x0:x1].mean((1, 2)))
        boxes.append(torch.tensor(bb, dtype=torch.float32).reshape(-1, 4))
    r = roi_features(fmap, boxes, stride=s)
    assert r.shape == (len(crops), 3, 1, 1)
    if crops: assert torch.allclose(r[:, :, 0, 0], torch.stack(crops), atol=1e-5)


def make_batch(V=30, lens=(6, 1, 4, 9, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, V, (n,), generator=g).tolist() for n in lens]


ENCODERS = [lambda: BagEncoder(30, 8), lambda: LSTMEncoder(30, 8, 5), lambda: LSTMEncoder(30, 8, 5, num_layers=2),
            lambda: GRUEncoder(30, 8, 5, bidirectional=True), lambda: GRUEncoder(30, 8, 5, num_layers=2, bidirectional=True),
            lambda: SelfAttentionEncoder(30, 8), lambda: SelfAttentionEncoder(30, 8, rnn='lstm', hidden_dim=5),
            lambda: SelfAttentionEncoder(30, 8, rnn='gru', hidden_dim=5, bidirectional=True, attn_hidden=7)]


@pytest.mark.parametrize('make', ENCODERS)
@torch.no_grad()
def test_text_encoder_padding_and_order_invariance(make):
    torch.manual_seed(0)
    enc = make().eval()
    seqs = make_batch()
    tok, lens = pad_batch(seqs)
    out, words = enc(tok, lens, return_words=True)
    assert out.shape == (5, enc.out_dim) and words.shape == (5, tok.shape[1], enc.out_dim)
    assert (words[~length_mask(lens)] == 0).all()
    extra = torch.cat([tok, torch.full((5, 4), PAD_IDX)], 1)
    assert torch.allclose(enc(extra, lens), out, atol=1e-5)
    perm = torch.tensor([3, 0, 4, 2, 1])
    assert torch.allclose(enc(tok[perm], lens[perm]), out[perm], atol=1e-5)
    for i, s in enumerate(seqs):
        assert torch.allclose(enc(torch.tensor([s]), torch.tensor([len(s)]))[0], out[i], atol=1e-5)


def test_bigru_matches_manual_directions():
    torch.manual_seed(0)
    enc = GRUEncoder(30, 8, 5, bidirectional=True).eval()
    seqs = make_batch()
    out = enc(*pad_batch(seqs))
    fwd = nn.GRU(8, 5, batch_first=True); bwd = nn.GRU(8, 5, batch_first=True)
    sd = enc.rnn.state_dict()
    fwd.load_state_dict({k: v for k, v in sd.items() if not k.endswith('_reverse')})
    bwd.load_state_dict({k.replace('_reverse', ''): v for k, v in sd.items() if k.endswith('_reverse')})
    for i, s in enumerate(seqs):
        e = enc.embed(torch.tensor([s]))
        hf = fwd(e)[1][0, 0]; hb = bwd(e.flip(1))[1][0, 0]
        assert torch.allclose(out[i], torch.cat([hf, hb]), atol=1e-5)


@torch.no_grad()
def test_self_attention_weights():
    torch.manual_seed(0)
    for enc in (SelfAttentionEncoder(30, 8), SelfAttentionEncoder(30, 8, rnn='lstm', hidden_dim=6)):
        tok, lens = pad_batch(make_batch())
        a = enc.weights(tok, lens)
        assert a.shape == tok.shape
        assert (a[~length_mask(lens)] == 0).all()
        assert torch.allclose(a.sum(1), torch.ones(5), atol=1e-6)
        w = enc.words(tok, lens)
        assert torch.allclose(enc(tok, lens), (a[..., None] * w).sum(1), atol=1e-6)


def test_word_vectors_glove_and_word2vec():
    v = Vocab.build(['the red cube', 'a blue sphere', 'the purple torus'])
    E, cov = load_word_vectors(DATA / 'tiny_glove.txt', v)
    assert E.shape == (len(v), 4) and E.dtype == torch.float32 and cov == pytest.approx(5 / 8)
    assert torch.equal(E[PAD_IDX], torch.zeros(4)) and torch.equal(E[v['sphere']], torch.tensor([1.0, -1.0, 0.5, -0.5]))
    E2, cov2 = load_word_vectors(DATA / 'tiny_w2v.txt', v, dim=4)
    assert cov2 == pytest.approx(0.5) and torch.equal(E2[v['red']], torch.tensor([1.0, 2, 3, 4]))
    assert torch.equal(E2[v['purple']], E[v['purple']])          # same seed, same random rows for unknown words
    emb = embedding_from_vectors(E, freeze=True)
    assert not emb.weight.requires_grad and emb.padding_idx == PAD_IDX


@pytest.mark.parametrize('text, line', [('a 1 2 3\nb 1 2\n', 2), ('2 3\na 1 2 3\nb 1 2 3 4\n', 3),
                                        ('a 1 2 3\n\nb 1 two 3\n', 3), ('word\n', 1)])
def test_word_vectors_malformed(tmp_path, text, line):
    p = tmp_path / 'vecs.txt'; p.write_text(text)
    with pytest.raises(ErretError, match=rf'vecs\.txt, line {line}'): load_word_vectors(p, ['<pad>', 'a', 'b'])
