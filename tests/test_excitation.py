"Excitation backprop: hand computation, mass conservation, batch-norm folding, c-MWP, agreement with Captum's LRP on VGG16, the ReLU-LSTM, baselines."
import copy
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from erret.core import ErretError, seed_everything
from erret.excitation import (ExcitationBackprop, ReLULSTM, SALIENCY_METHODS, center_saliency, excitation_rule,
                              gradient_saliency, lstm_excitation, spatial_saliency, temporal_saliency)

torch.set_num_threads(1)


def random_cnn(bn=True):
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8) if bn else nn.Identity(), nn.ReLU(inplace=True),
                      nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(16, 16, 3),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 32), nn.ReLU(),
                      nn.Linear(32, 10))
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(); mod.running_var.uniform_(0.5, 2); mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.normal_()
    return m


def corr(a, b):
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return torch.stack([torch.corrcoef(torch.stack([u, v]))[0, 1] for u, v in zip(a, b)])


def test_hand_two_layer():
    "The worked example: a = (1, 2), h = ReLU(W1 a) = (7, 3); class 1 gives P(h) = (14, 3)/17, P(a) = (2, 15)/17"
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    net[0].weight.data = torch.tensor([[1., 3.], [-1., 2.]]); net[2].weight.data = torch.tensor([[1., -2.], [2., 1.]])
    a = torch.tensor([[1., 2.]])
    P_h, P_a = ExcitationBackprop(net, [net[1], net[0]]).attribute(a, target=1, attribute_to_layer_input=True)
    assert torch.allclose(P_a, torch.tensor([[2 / 17, 15 / 17]]))
    assert torch.allclose(P_h, torch.tensor([[14 / 17, 3 / 17]]))                       # the ReLU's input
    assert torch.allclose(ExcitationBackprop(net, net[1]).attribute(a, target=1), torch.tensor([[14 / 17, 3 / 17]]))
    assert torch.allclose(ExcitationBackprop(net, net[0]).attribute(a, target=0, attribute_to_layer_input=True), torch.tensor([[1 / 7, 6 / 7]]))
    c = ExcitationBackprop(net, net[0]).attribute(a, target=0, attribute_to_layer_input=True, contrastive=True)
    assert torch.allclose(c, torch.tensor([[1 / 7, 0.]]))
    # the rule alone, with inputs of both signs: contributions 3 and 2
    assert torch.allclose(excitation_rule(torch.tensor([[-1., 2.]]), torch.ones(1, 1), F.linear, torch.tensor([[-3., 1.]])),
                          torch.tensor([[.6, .4]]))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_mass_conserved_cnn(seed):
    seed_everything(seed)
    cnn = random_cnn().train()
    x = torch.rand(3, 3, 16, 16)
    layers = [cnn[0], cnn[2], cnn[3], cnn[4], cnn[6], cnn[7], cnn[9], cnn[10], cnn[12], cnn[14]]
    maps = ExcitationBackprop(cnn, layers).attribute(x, target=[seed, 4, 9])
    for m in maps:
        assert (m >= 0).all()
        torch.testing.assert_close(m.flatten(1).sum(1), torch.ones(3), atol=1e-4, rtol=0)
    assert cnn.training                                    # mode restored
    P_top = torch.rand(3, 10)
    m = ExcitationBackprop(cnn, cnn[4]).attribute(x, top_signal=P_top, attribute_to_layer_input=True)
    torch.testing.assert_close(m.flatten(1).sum(1), P_top.sum(1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('seed', [0, 1])
def test_mass_conserved_mlp_and_batch_independent(seed):
    seed_everything(seed)
    mlp = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 30), nn.ReLU(), nn.Dropout(), nn.Linear(30, 5))
    x = torch.rand(6, 20)
    P = ExcitationBackprop(mlp, [mlp[0], mlp[2], mlp[5]]).attribute(x, attribute_to_layer_input=True)
    for p in P: torch.testing.assert_close(p.sum(1), torch.ones(6), atol=1e-5, rtol=0)
    one = ExcitationBackprop(mlp, mlp[0]).attribute(x[2:3], attribute_to_layer_input=True)
    torch.testing.assert_close(one, P[0][2:3], atol=1e-6, rtol=1e-5)


def test_bn_folded_equals_merged_conv():
    "EB through conv + BN (eval) equals EB through the single conv the pair merges into"
    seed_everything(0)
    cnn = random_cnn().eval()
    conv, bn = cnn[0], cnn[1]
    bn.weight.data[::2] *= -1                              # a positive scale cancels in the rule; a negative one flips W+
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    merged = copy.deepcopy(cnn); merged[1] = nn.Identity()
    merged[0].weight.data = conv.weight * s[:, None, None, None]
    merged[0].bias.data = (conv.bias - bn.running_mean) * s + bn.bias
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(merged(x), cnn(x), atol=1e-5, rtol=1e-4)
    a = ExcitationBackprop(cnn, cnn[0]).attribute(x, target=3, attribute_to_layer_input=True)
    b = ExcitationBackprop(merged, merged[0]).attribute(x, target=3, attribute_to_layer_input=True)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    c = ExcitationBackprop(cnn, cnn[0], fold_bn=False).attribute(x, target=3, attribute_to_layer_input=True)
    assert not torch.allclose(a, c)                        # folding matters where gamma < 0


def test_contrastive():
    seed_everything(0)
    cnn = random_cnn().eval()
    x = torch.rand(3, 3, 16, 16)
    c = ExcitationBackprop(cnn, cnn[4]).attribute(x, target=2, contrastive=True)
    neg = copy.deepcopy(cnn); neg[-1].weight.data *= -1
    ref = (ExcitationBackprop(cnn, cnn[4]).attribute(x, target=2) - ExcitationBackprop(neg, neg[4]).attribute(x, target=2)).clamp(min=0)
    torch.testing.assert_close(c, ref)
    assert (c >= 0).all() and c.sum() > 0


@pytest.mark.filterwarnings('ignore:Input Tensor 0 did not already require gradients')
def test_vgg16_agrees_with_captum_lrp():
    "MWP = LRP alpha1-beta0 with bias-free denominators, up to a per-image scale: correlation > 0.99 at a conv layer"
    torchvision = pytest.importorskip('torchvision')
    captum = pytest.importorskip('captum')
    from captum.attr import LayerLRP
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule
    seed_everything(0)
    vgg = torchvision.models.vgg16(weights=None).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad(): t = vgg(x).argmax(1)
    ours = ExcitationBackprop(vgg, vgg.features[24]).attribute(x, target=t)     # conv5_1
    torch.testing.assert_close(ours.flatten(1).sum(1), torch.ones(2), atol=1e-4, rtol=0)
    ref_model = vgg                    # Captum's LRP leaves a model changed (a 2nd call on it disagrees): one call, last use
    for mod in ref_model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)): mod.rule = Alpha1_Beta0_Rule(set_bias_to_zero=True)
        if isinstance(mod, nn.ReLU): mod.inplace = False
    ref = LayerLRP(ref_model, ref_model.features[24]).attribute(x, target=t)
    r = corr(ours, ref)
    assert (r > 0.99).all(), r


def test_relu_lstm_equations_and_state():
    seed_everything(0)
    lstm = ReLULSTM(5, 3).requires_grad_(False)
    x = torch.randn(2, 4, 5)
    out, (hT, cT) = lstm(x)
    assert out.shape == (2, 4, 3) and torch.equal(hT, out[:, -1]) and (out >= 0).all() and (cT >= 0).all()
    h = c = torch.zeros(2, 3)
    for t in range(4):
        z = x[:, t] @ lstm.x2h.weight.T + lstm.x2h.bias + h @ lstm.h2h.weight.T
        i, f, g, o = z[:, :3].sigmoid(), z[:, 3:6].sigmoid(), z[:, 6:9].relu(), z[:, 9:].sigmoid()
        c = f * c + i * g; h = o * c.relu()
        torch.testing.assert_close(out[:, t], h)
    with pytest.raises(ErretError, match=r'expected x of shape \(B, T, 5\)'): lstm(torch.randn(2, 4, 6))


def test_lstm_mass_conserved_over_time():
    seed_everything(0)
    lstm = ReLULSTM(6, 8).requires_grad_(False)
    x = torch.randn(3, 7, 6)
    hs = lstm(x)[0]
    P_h, P_o = torch.rand(3, 8) * (hs[:, -1] > 0), torch.rand(3, 7, 8) * (hs > 0)
    Px, Ph0, Pc0 = lstm_excitation(lstm, x, P_out=P_o, P_h=P_h)
    torch.testing.assert_close(Px.sum((1, 2)), P_h.sum(1) + P_o.sum((1, 2)), atol=1e-4, rtol=1e-5)
    assert Ph0.abs().sum() == 0 and Pc0.abs().sum() == 0
    st = (torch.rand(3, 8), torch.rand(3, 8))
    P_h = torch.rand(3, 8) * (lstm(x, st)[0][:, -1] > 0)
    Px, Ph0, Pc0 = lstm_excitation(lstm, x, P_h=P_h, h0=st)
    torch.testing.assert_close(Px.sum((1, 2)) + Ph0.sum(1) + Pc0.sum(1), P_h.sum(1), atol=1e-4, rtol=1e-5)


def toy_lstm(V=6):
    m = ReLULSTM(V, V)
    with torch.no_grad():
        m.x2h.weight.zero_(); m.h2h.weight.zero_(); m.x2h.bias.fill_(4.)
        m.x2h.bias[2 * V:3 * V] = 0; m.x2h.weight[2 * V:3 * V] = torch.eye(V); m.h2h.weight[2 * V:3 * V] = 0.02
    return m


@pytest.mark.parametrize('pos', range(6))
def test_temporal_saliency_moves_to_deciding_word(pos):
    "Hidden unit 0 fires on word 0 and the head reads unit 0: the mass peaks wherever word 0 is"
    toy = toy_lstm()
    head = nn.Linear(6, 1, bias=False); head.weight.data = torch.full((1, 6), 0.05); head.weight.data[0, 0] = 1.
    model = nn.Module(); model.lstm, model.head = toy, head
    model.forward = lambda x: model.head(model.lstm(x)[1][0])
    words = [3, 1, 4, 5, 2, 1]; words[pos] = 0
    x = F.one_hot(torch.tensor([words]), 6).float()
    s = temporal_saliency(ExcitationBackprop(model, toy).attribute(x, target=0, attribute_to_layer_input=True))[0]
    assert int(s.argmax()) == pos and s[pos] > 0.5, s
    torch.testing.assert_close(s.sum(), torch.tensor(1.), atol=1e-5, rtol=0)


class Captioned(nn.Module):
    "CNN -> FC -> visual step, then words -> ReLU-LSTM -> linear -> sigmoid (the identify architecture, tiny)"
    def __init__(self, V=12, D=16, H=16):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.visual = nn.Sequential(self.cnn, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, D))
        self.embed, self.lstm, self.head = nn.Embedding(V, D), ReLULSTM(D, H), nn.Linear(H, 1)

    def forward(self, img, tok):
        x = torch.cat([self.visual(img)[:, None], self.embed(tok)], 1)
        return self.head(self.lstm(x)[1][0]).sigmoid()[:, 0]


def test_caption_model_mass_splits_between_image_and_words():
    seed_everything(0)
    cap = Captioned()
    img, tok = torch.rand(3, 3, 32, 32), torch.randint(0, 12, (3, 5))
    P_seq, P_img = ExcitationBackprop(cap, [cap.lstm, cap.cnn[3]]).attribute((img, tok), target=0, attribute_to_layer_input=True)
    steps = temporal_saliency(P_seq)
    assert steps.shape == (3, 6)
    torch.testing.assert_close(steps.sum(1), torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(P_img.sum((1, 2, 3)), steps[:, 0], atol=1e-5, rtol=1e-4)
    assert spatial_saliency(P_img, 32).shape == (3, 32, 32)
    c = ExcitationBackprop(cap, cap.cnn[4]).attribute((img, tok), contrastive=True)
    assert (c >= 0).all()


def test_baselines_share_one_signature():
    seed_everything(0)
    cnn = random_cnn().eval(); cap = Captioned()
    x = torch.rand(2, 3, 16, 16); img, tok = torch.rand(2, 3, 32, 32), torch.randint(0, 12, (2, 4))
    for name, fn in SALIENCY_METHODS.items():
        assert fn(cnn, cnn[4], x, target=1).shape == (2, 16, 16), name
        s = fn(cap, cap.cnn[4], (img, tok))
        assert s.shape == (2, 32, 32) and torch.isfinite(s).all(), name
    xg = x.clone().requires_grad_()
    g, = torch.autograd.grad(cnn(xg)[:, 1].sum(), xg)
    torch.testing.assert_close(gradient_saliency(cnn, None, x, 1), g.abs().amax(1))
    cen = center_saliency(None, None, torch.zeros(1, 3, 9, 15))[0]
    assert divmod(int(cen.argmax()), 15) == (4, 7)
    with pytest.raises(ErretError, match='expected images'): gradient_saliency(cnn, None, torch.rand(2, 5))


def test_errors():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ErretError, match='not a module of the model'): ExcitationBackprop(net, nn.ReLU())
    with pytest.raises(ErretError, match='top layer has 2 outputs'): ExcitationBackprop(net, net[1]).attribute(torch.rand(1, 3), target=5)
    with pytest.raises(ErretError, match='non-negative'):
        ExcitationBackprop(net, net[1]).attribute(torch.rand(1, 3), top_signal=-torch.ones(1, 2))
    relu_only = nn.Sequential(nn.ReLU())
    with pytest.raises(ErretError, match='no nn.Linear/nn.Conv'): ExcitationBackprop(relu_only, relu_only[0]).attribute(torch.rand(1, 3))
    skip = nn.Module(); skip.a, skip.b = nn.Linear(3, 2), nn.Linear(3, 2); skip.forward = lambda x: skip.a(x)
    with pytest.raises(ErretError, match='did not run'): ExcitationBackprop(skip, [skip.a, skip.b]).attribute(torch.rand(1, 3))
    with pytest.raises(ErretError, match='expected .B, C, h, w.'): spatial_saliency(torch.rand(3))


def test_padded_captions_get_no_mass_at_padding():
    "Gathering each caption's state at its last real word routes P there; padding gets nothing"
    seed_everything(0)
    embed, lstm, head = nn.Embedding(12, 6), ReLULSTM(6, 8), nn.Linear(8, 1)
    model = nn.ModuleList([embed, lstm, head])
    model.forward = lambda tok, L: head(lstm(embed(tok))[0][torch.arange(len(tok)), L - 1])[:, 0]
    tok, L = torch.randint(0, 12, (3, 7)), torch.tensor([7, 4, 2])
    s = temporal_saliency(ExcitationBackprop(model, lstm).attribute(tok, target=0, additional_forward_args=L, attribute_to_layer_input=True))
    torch.testing.assert_close(s.sum(1), torch.ones(3), atol=1e-5, rtol=0)
    assert s[1, 4:].abs().sum() == 0 and s[2, 2:].abs().sum() == 0
    alone = ExcitationBackprop(model, lstm).attribute(tok[1:2, :4], target=0, additional_forward_args=torch.tensor([4]),
                                                      attribute_to_layer_input=True)
    torch.testing.assert_close(temporal_saliency(alone), s[1:2, :4], atol=1e-6, rtol=1e-5)
