"erret.index: the exact paths (torch chunked, faiss flat, sharded) agree; approximate ones have high recall."
import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from erret.core import ErretError
from erret.index import Gallery, merge_topk


def assert_same_topk(a, b, tol=1e-5):
    "Scores close; indices equal wherever a score is separated from its neighbours by more than `tol`"
    (va, ia), (vb, ib) = a, b
    assert va.shape == vb.shape and ia.shape == ib.shape
    torch.testing.assert_close(va, vb, atol=tol, rtol=0)
    v = va.double()
    gap = torch.full_like(v, math.inf)
    d = (v[:, 1:] - v[:, :-1]).abs()
    gap[:, 1:] = d; gap[:, :-1] = torch.minimum(gap[:, :-1], d)
    sep = gap > tol
    assert torch.equal(ia[sep], ib[sep])


@pytest.fixture(scope='module')
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4000, 64, generator=g), torch.randn(300, 64, generator=g)


@pytest.fixture(scope='module')
def exact(data):
    X, Q = data
    s = F.normalize(Q, dim=1) @ F.normalize(X, dim=1).T                  # (Q, G) brute force
    v, i = s.sort(1, descending=True)
    return v[:, :25], i[:, :25]


@pytest.mark.parametrize('kw', [dict(), dict(chunk_size=1), dict(chunk_size=77), dict(shards=2), dict(shards=5, chunk_size=64),
                                dict(backend='faiss'), dict(backend='faiss', shards=3)])
def test_exact_paths_agree(data, exact, kw):
    X, Q = data
    v, i = Gallery(X, **kw).search(Q, 25)
    assert v.dtype == torch.float32 and i.dtype == torch.int64
    assert_same_topk((v, i), exact)


@pytest.mark.parametrize('kw', [dict(), dict(shards=3), dict(backend='faiss'), dict(backend='faiss', shards=2)])
def test_add_matches_one_shot(data, exact, kw):
    X, Q = data
    g = Gallery(X[:1500].numpy(), **kw)
    g.add(X[1500:3100]).add(X[3100:])
    assert len(g) == len(X)
    assert_same_topk(g.search(Q.numpy(), 25), exact)


def test_numpy_and_torch_inputs_agree(data):
    X, Q = data
    a, b = Gallery(X).search(Q, 5), Gallery(X.numpy()).search(Q.numpy(), 5)
    assert torch.equal(a[1], b[1])


def test_approximate_recall():
    g = torch.Generator().manual_seed(1)
    C = torch.randn(50, 32, generator=g)
    X = C[torch.randint(0, 50, (5000,), generator=g)] + 0.8 * torch.randn(5000, 32, generator=g)
    Q = X[:200] + 0.3 * torch.randn(200, 32, generator=g)
    ex = Gallery(X).search(Q, 10)[1]
    for kw in (dict(index='ivf', nlist=64, nprobe=16), dict(index='hnsw', ef_search=64), dict(index='ivf', nlist=64, nprobe=8, shards=2)):
        ap = Gallery(X, backend='faiss', **kw).search(Q, 10)[1]
        rec = np.mean([len(set(a.tolist()) & set(e.tolist())) / 10 for a, e in zip(ap, ex)])
        assert rec > 0.9, (kw, rec)


def test_k_clamped_and_empty_slots():
    X = torch.randn(30, 8)
    v, i = Gallery(X, shards=4).search(torch.randn(2, 8), 100)
    assert v.shape == (2, 30) and sorted(i[0].tolist()) == list(range(30))
    # IVF probing one cell of many may find fewer than k items: -1 with score -inf
    v, i = Gallery(torch.randn(200, 8), backend='faiss', index='ivf', nlist=50, nprobe=1).search(torch.randn(3, 8), 150)
    assert ((i == -1) == torch.isinf(v)).all()
    assert (v[:, :-1] >= v[:, 1:]).all()


def test_normalize_flag():
    X = torch.tensor([[1., 0], [10., 0]])
    assert Gallery(X, normalize=False).search(torch.tensor([[1., 0]]), 1)[1].item() == 1
    torch.testing.assert_close(Gallery(X).search(torch.tensor([[3., 0]]), 2)[0], torch.ones(1, 2))


def test_merge_topk():
    s = torch.randn(4, 30); idx = torch.arange(30).expand(4, 30)
    v, i = merge_topk(s, idx, 5)
    assert torch.equal(i, s.topk(5, 1).indices)


def test_errors():
    with pytest.raises(ErretError, match='torch backend is exact'): Gallery(torch.randn(5, 2), index='hnsw')
    with pytest.raises(ErretError, match="backend must be"): Gallery(torch.randn(5, 2), backend='annoy')
    with pytest.raises(ErretError, match=r'must have shape \(N, 2\)'): Gallery(torch.randn(5, 2)).search(torch.randn(1, 3))
    with pytest.raises(ErretError, match='gallery is empty'): Gallery(dim=3).search(torch.randn(1, 3))
    with pytest.raises(ErretError, match='nlist=64'): Gallery(torch.randn(10, 4), backend='faiss', index='ivf', nlist=64)
    with pytest.raises(ErretError, match='k must be a positive integer'): Gallery(torch.randn(5, 2)).search(torch.randn(1, 2), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu(data, exact):
    X, Q = data
    v, i = Gallery(X, device='cuda').search(Q.cuda(), 25)
    assert v.device.type == 'cuda'
    assert_same_topk((v.cpu(), i.cpu()), exact, tol=1e-4)
