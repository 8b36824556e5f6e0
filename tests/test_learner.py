"Tests for `erret.learner`: end-to-end fit, logged extras, NaN stop, best checkpoint, exact resume, DDP on 2 CPU processes"
import os, sys, socket, subprocess, copy
from pathlib import Path
import numpy as np
import pytest
import torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from erret.core import ErretError, seed_everything
from erret.learner import Learner, make_loader, onecycle, cosine, to_device, unwrap
from erret.viz import plot_curves

ROOT = Path(__file__).resolve().parents[1]

def separable(n, seed, d=16, c=4):
    "Points labelled by a fixed random linear map: a linear classifier can be perfect"
    W = torch.randn(d, c, generator=torch.Generator().manual_seed(0))
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, (x @ W).argmax(1))

TRAIN, VALID = separable(512, 1), separable(256, 2)

def ce(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)

def accuracy(model, ds=VALID):
    x, y = ds.tensors
    return (model(x).argmax(1) == y).float().mean().item()

def test_fit_beats_chance():
    seed_everything(0)
    learn = Learner(nn.Linear(16, 4), make_loader(TRAIN, 64, shuffle=True), ce, valid_fn=lambda m: {'acc': accuracy(m)},
                    lr=0.1, epochs=5, sched=onecycle(), monitor='acc', quiet=True)
    hist = learn.fit()
    assert len(hist) == 5 and hist[-1]['train_loss'] < hist[0]['train_loss']
    assert hist[-1]['acc'] > 0.8, hist[-1]          # chance is 0.25
    assert learn.best == max(h['acc'] for h in hist) and learn.mode == 'max'
    assert len(plot_curves(hist).axes) == 2

def test_loss_dict_extras_logged():
    def loss_fn(model, batch):
        x, y = batch; out = model(x)
        return {'loss': F.cross_entropy(out, y), 'acc': (out.argmax(1) == y).float().mean(), 'const': 2.0}
    hist = Learner(nn.Linear(16, 4), make_loader(TRAIN, 64), loss_fn, epochs=2, lr=0.05, quiet=True).fit()
    assert list(hist[0]) == ['epoch', 'train_loss', 'train_acc', 'train_const', 'lr', 'seconds']
    assert hist[1]['train_const'] == pytest.approx(2.0) and 0 <= hist[1]['train_acc'] <= 1
    assert hist[1]['train_acc'] > hist[0]['train_acc']

def test_nan_loss_stops_before_the_step():
    calls = []
    def loss_fn(model, batch):
        calls.append(1)
        return ce(model, batch) * (float('nan') if len(calls) == 11 else 1.)   # epoch 1, step 2 with 8 batches/epoch
    learn = Learner(nn.Linear(16, 4), make_loader(TRAIN, 64), loss_fn, epochs=3, quiet=True)
    snap = []
    learn.one_batch = (lambda f: lambda *a: (snap.append(copy.deepcopy(learn.model.state_dict())), f(*a))[1])(learn.one_batch)
    with pytest.raises(FloatingPointError, match=r'the loss is nan \(rank 0\) at epoch 1, step 2 of 8') as e:
        learn.fit()
    assert 'Try a lower lr' in str(e.value) and 'clip=1.0' in str(e.value)
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, snap[-1][k])   # no step after the NaN
    assert len(learn.history) == 1

def test_nonfinite_gradient_stops_with_clip():
    model = nn.Linear(16, 4); nn.init.zeros_(model.weight)
    loss_fn = lambda m, b: ce(m, b) + m.weight.abs().sqrt().sum()          # d sqrt|w| / dw is not finite at 0
    learn = Learner(model, make_loader(TRAIN, 64), loss_fn, clip=1.0, epochs=1, quiet=True)
    with pytest.raises(FloatingPointError, match='the gradient norm is nan'): learn.fit()

def test_best_checkpoint(tmp_path):
    scores, seen = [10., 30., 50., 40.], []
    def valid_fn(m):
        seen.append(copy.deepcopy(m.state_dict()))
        return {'R@1': scores[len(seen) - 1]}
    learn = Learner(nn.Linear(16, 4), make_loader(TRAIN, 64, shuffle=True), ce, valid_fn=valid_fn, monitor='R@1',
                    epochs=4, ckpt_dir=tmp_path, quiet=True)
    learn.fit()
    assert (learn.best, learn.best_epoch) == (50., 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['best.pt', 'last.pt']   # atomic: no temp files left
    best = torch.load(tmp_path/'best.pt', weights_only=True)
    assert best['epoch'] == 2 and best['score'] == 50. and best['monitor'] == 'R@1'
    assert torch.load(tmp_path/'last.pt', weights_only=True)['epoch'] == 4
    m = learn.load_best()
    for k, v in m.state_dict().items(): assert torch.equal(v, seen[2][k])

def test_patience_and_in_memory_best():
    scores, seen = [3., 2., 2.5, 2.6, 9.], []
    def valid_fn(m):
        seen.append(copy.deepcopy(m.state_dict())); return {'medr': scores[len(seen) - 1]}
    learn = Learner(nn.Linear(16, 4), make_loader(TRAIN, 64), ce, valid_fn=valid_fn, monitor='medr', epochs=5, patience=2, quiet=True)
    assert len(learn.fit()) == 4 and learn.mode == 'min'
    for k, v in learn.load_best().state_dict().items(): assert torch.equal(v, seen[1][k])

def _resumable(d, init_seed=0):
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 4))
    def noisy(model, batch):
        x, y = batch
        x = x + 0.1 * torch.randn_like(x) + 0.01 * float(np.random.randn())
        return {'loss': ce(model, (x, y)), 'noise': float(np.random.rand())}
    def valid_fn(m):
        idx = torch.randperm(256)[:128]                      # validation draws from the RNG too
        return {'acc': accuracy(m, TensorDataset(*[t[idx] for t in VALID.tensors]))}
    return Learner(model, make_loader(TRAIN, 64, shuffle=True), noisy, valid_fn=valid_fn, monitor='acc',
                   epochs=4, sched=onecycle(), clip=1.0, ckpt_dir=d, seed=3, quiet=True)

def test_exact_resume(tmp_path):
    a = _resumable(tmp_path/'a'); ha = a.fit()
    b = _resumable(tmp_path/'b'); assert len(b.fit(stop_after=2)) == 2
    assert torch.load(tmp_path/'b'/'last.pt', weights_only=True)['epoch'] == 2
    c = _resumable(tmp_path/'b', init_seed=123)                # new process state, other init: all must come from last.pt
    hc = c.fit(resume=True)
    for (k, v), w in zip(a.model.state_dict().items(), c.model.state_dict().values()): assert torch.equal(v, w), k
    strip = lambda h: [{k: v for k, v in r.items() if k != 'seconds'} for r in h]
    assert strip(ha) == strip(hc) and len(hc) == 4
    assert c.opt.state_dict()['state'][0]['step'] == a.opt.state_dict()['state'][0]['step']
    assert c.sched.last_epoch == a.sched.last_epoch == 4 * 8
    assert (c.best, c.best_epoch) == (a.best, a.best_epoch)

def test_resume_without_checkpoint_starts_fresh(tmp_path):
    learn = Learner(nn.Linear(16, 4), make_loader(TRAIN, 64), ce, epochs=1, ckpt_dir=tmp_path, quiet=True)
    assert len(learn.fit(resume=True)) == 1
    with pytest.raises(ErretError, match='needs ckpt_dir'): Learner(nn.Linear(16, 4), make_loader(TRAIN, 64), ce).fit(resume=True)

def test_cosine_schedule_and_to_device():
    learn = Learner(nn.Linear(16, 4), make_loader(TRAIN, 64), ce, epochs=2, sched=cosine(warmup=0.25), lr=0.1, quiet=True)
    hist = learn.fit()
    assert hist[0]['lr'] > hist[1]['lr'] and hist[1]['lr'] == pytest.approx(0., abs=1e-2)
    b = to_device({'a': [torch.ones(1), ('s', torch.zeros(2))]}, 'cpu')
    assert b['a'][1][0] == 's' and b['a'][1][1].shape == (2,)

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_ddp_two_cpu_processes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env.update(OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1', '--nproc_per_node', '2',
           '--master_addr', '127.0.0.1', '--master_port', str(_free_port()), str(ROOT/'tests'/'ddp_worker.py'), str(tmp_path)]
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path/f'rank{r}.pt', weights_only=False) for r in (0, 1))
    assert (r0['rank'], r1['rank'], r0['world'], r0['distributed']) == (0, 1, 2, True)
    assert r0['wrapped'] == 'DistributedDataParallel' and r0['sampler'] == 'DistributedSampler'
    assert r0['n_batches'] == r1['n_batches'] == 4                  # 64 samples / 2 ranks / batch 8
    assert not all(torch.equal(r0['before'][k], r1['before'][k]) for k in r0['before'])   # different inits...
    for k in r0['init']: assert torch.equal(r0['init'][k], r1['init'][k]), k              # ...synced by DDP
    for k in r0['final']: assert torch.equal(r0['final'][k], r1['final'][k]), k           # identical after training
    assert not all(torch.equal(r0['final'][k], r0['init'][k]) for k in r0['final'])      # and it did train
    assert r0['history'] == r1['history'] and len(r0['history']) == 2 and 'acc' in r0['history'][0]
    assert (tmp_path/'ckpt0'/'last.pt').exists() and (tmp_path/'ckpt0'/'best.pt').exists()
    assert not (tmp_path/'ckpt1').exists()                           # only rank 0 writes
    for r in (r0, r1): assert r['nan'] and 'at epoch 0, step 0' in r['nan']   # a NaN on rank 1 stops both
