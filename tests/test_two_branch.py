"Tests for erret.two_branch: top-K ranking loss, margin, neighbourhood sampling, evaluation rules, the two networks."
import math
from collections import Counter
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from erret.core import ErretError
from erret.two_branch import (topk_triplet, two_branch_loss, distance, branch, EmbeddingNet, SimilarityNet, logistic_loss,
                              neighbourhood_batches, random_batches, localization_ranks, sentence_to_sentence, TextFeatures,
                              CCABaseline, region_features, reproduce)
from erret.metrics import recall_at_k

torch.set_num_threads(1)

def brute_topk(D, P, N, margin, k):
    tot, n = 0., 0
    for a in range(D.shape[0]):
        for p in range(D.shape[1]):
            if not P[a, p]: continue
            hs = sorted((max(0., margin + float(D[a, p] - D[a, q])) for q in range(D.shape[1]) if N[a, q]), reverse=True)
            tot += sum(hs[:k]); n += 1
    return tot / n

def test_topk_violators_hand_made():
    D = torch.tensor([[0.10, 0.50, 0.12, 0.14, 0.30],
                      [0.40, 0.20, 0.21, 0.60, 0.22]])
    P = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]]).bool()
    # anchor 0: violators 0.12 (0.03), 0.14 (0.01); anchor 1: 0.21 (0.04), 0.22 (0.03)
    assert topk_triplet(D, P, margin=0.05, k=30).item() == pytest.approx((0.04 + 0.07) / 2, abs=1e-6)
    assert topk_triplet(D, P, margin=0.05, k=1).item() == pytest.approx((0.03 + 0.04) / 2, abs=1e-6)

def test_margin_behaviour():
    D = torch.tensor([[0.10, 0.50, 0.12]]); P = torch.tensor([[1, 0, 0]]).bool()
    assert topk_triplet(D, P, margin=0.0).item() == 0                  # negatives farther than the positive: no loss
    assert topk_triplet(D, P, margin=0.02).item() == pytest.approx(0.0, abs=1e-7)
    assert topk_triplet(D, P, margin=0.05).item() == pytest.approx(0.03, abs=1e-6)
    assert topk_triplet(D, P, margin=1.0).item() == pytest.approx(0.6 + 0.98, abs=1e-6)   # every negative violates

@pytest.mark.parametrize('k', [1, 2, 5, 30])
def test_topk_matches_brute_force(k):
    g = torch.Generator().manual_seed(k)
    D, P = torch.rand(5, 12, generator=g), torch.rand(5, 12, generator=g) > 0.7
    P[:, 0] = True
    N = ~P & (torch.rand(5, 12, generator=g) > 0.2)
    assert topk_triplet(D, P, N, 0.3, k).item() == pytest.approx(brute_topk(D, P, N, 0.3, k), abs=1e-5)

def test_two_branch_loss_directions_and_constraints():
    X = F.normalize(torch.randn(4, 8), dim=1)
    P = torch.eye(4, dtype=torch.bool)
    assert two_branch_loss(X, X, P, margin=0.05).item() == pytest.approx(0, abs=1e-6)
    one = two_branch_loss(X, X, P, margin=5., lam1=1., lam2=0.)
    assert two_branch_loss(X, X, P, margin=5., lam1=1., lam2=1.).item() == pytest.approx(2 * one.item(), rel=1e-5)
    Py = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]).bool()
    base = two_branch_loss(X, X, P, margin=5.)
    assert two_branch_loss(X, X, P, margin=5., lam4=0.5, Py=Py) > base

def test_distance_is_euclidean():
    a, b = torch.randn(3, 5), torch.randn(4, 5)
    torch.testing.assert_close(distance(a, b), torch.cdist(a, b), atol=1e-4, rtol=1e-4)

@pytest.mark.parametrize('seed', range(5))
def test_neighbourhood_sampling_guarantee(seed):
    rng = np.random.default_rng(seed)
    groups = [list(range(100 * i, 100 * i + int(rng.integers(1, 7)))) for i in range(37)]
    owner = {x: i for i, g in enumerate(groups) for x in g}
    batches = neighbourhood_batches(groups, 16, 2, rng)
    seen = Counter()
    for b in batches:
        assert len(set(b)) == len(b) and len(b) <= 16
        for g, n in Counter(owner[x] for x in b).items():
            assert n >= min(2, len(groups[g]))                       # every anchor has 2 positives (or all it has)
            seen[g] += 1
    assert set(seen) == set(range(37)) and max(seen.values()) == 1   # each anchor once per epoch
    rb = random_batches(groups, 16, rng)
    assert sorted(x for b in rb for x in b) == sorted(owner)

def test_localization_rule():
    scores = [torch.tensor([.9, .5, .7]), torch.tensor([.1, .2]), torch.tensor([.3, .8])]
    ious = [torch.tensor([.1, .6, .5]), torch.tensor([.2, .49]), torch.tensor([.5, .1])]
    r = localization_ranks(scores, ious)
    assert r.tolist() == [2., math.inf, 2.]                       # IoU 0.5 counts; 0.49 does not
    assert recall_at_k(r, (1, 5)) == {'R@1': 0.0, 'R@5': pytest.approx(200 / 3)}

def test_sentence_to_sentence():
    Y = torch.tensor([[0., 0], [0, .1], [5, 5], [5, 5.1]])
    assert sentence_to_sentence(Y, np.array([0, 0, 1, 1]), (1,)) == {'R@1': 100.}
    assert sentence_to_sentence(Y, np.array([0, 1, 0, 1]), (1,)) == {'R@1': 0.}

def test_networks_and_logistic_loss():
    net = EmbeddingNet(10, 6, 16, 4)
    X, Y = net(torch.randn(5, 10), torch.randn(3, 6))
    torch.testing.assert_close(X.norm(dim=1), torch.ones(5))
    assert len(branch(10, 16, 4, linear=True)) == 2
    sn = SimilarityNet(10, 6, 16, 4, 8)
    assert sn(torch.randn(5, 10), torch.randn(3, 6)).shape == (5, 3)
    P = torch.tensor([[True, False, False, False]])
    assert logistic_loss(torch.zeros(1, 4), P).item() == pytest.approx(2 * math.log(2))

def test_text_features_and_cca():
    tf = TextFeatures('both', 4).fit(['a red circle', 'a blue square', 'two red squares', 'a circle', 'a green star'])
    assert tf.transform(['a red circle', 'an unseen word']).shape == (2, 2 * tf.pca.n_components_)
    with pytest.raises(ErretError, match="expected 'tfidf'"): TextFeatures('fisher')
    g = np.random.default_rng(0); Z = g.normal(size=(200, 3))
    x = torch.tensor(Z @ g.normal(size=(3, 10)) + 0.1 * g.normal(size=(200, 10)), dtype=torch.float32)
    y = torch.tensor(Z @ g.normal(size=(3, 6)) + 0.1 * g.normal(size=(200, 6)), dtype=torch.float32)
    s = CCABaseline(3, 8).fit(x, y).scores(x[:50], y[:50])
    assert (s.argmax(1) == torch.arange(50)).float().mean() > 0.5

def test_region_features():
    rf = region_features(torch.rand(1, 4, 8, 8), [torch.tensor([[0., 0, 32, 64]])], 8, 64)
    assert rf.shape == (1, 4 * 4 + 5)
    torch.testing.assert_close(rf[0, -5:], torch.tensor([0, 0, .5, 1, .5]))

def test_reproduce_bad_data(tmp_path):
    with pytest.raises(ErretError, match='not a Flickr30K Entities folder'):
        reproduce('smoke', data=tmp_path, out=tmp_path / 'out', log=lambda *a: None)
