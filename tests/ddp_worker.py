"""Launched by tests/test_learner.py as
`python -m torch.distributed.run --nproc_per_node 2 --master_addr 127.0.0.1 --master_port PORT tests/ddp_worker.py OUTDIR`.
Trains a tiny model with `erret.learner.Learner` under DDP (gloo, CPU) and saves what each rank saw to OUTDIR/rank{R}.pt."""
import sys, copy
from pathlib import Path
import torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from erret.learner import Learner, make_loader, rank, world_size, unwrap, is_distributed, cleanup_distributed

out = Path(sys.argv[1])
x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))         # the same data on every rank
y = (x[:, 0] + x[:, 1] > 0).long()
dl = make_loader(TensorDataset(x, y), batch_size=8, shuffle=True, device='cpu')

def loss_fn(model, batch):
    xb, yb = batch
    return F.cross_entropy(model(xb), yb)

def valid_fn(model):
    return {'acc': (model(x).argmax(1) == y).float().mean()}

torch.manual_seed(100 + int(__import__('os').environ['RANK']))   # a different init on each rank: DDP must sync it
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
before = copy.deepcopy(model.state_dict())
learn = Learner(model, dl, loss_fn, valid_fn=valid_fn, monitor='acc', lr=0.05, epochs=2, device='cpu',
                ckpt_dir=out/f'ckpt{rank()}', quiet=True)                # a folder per rank: only rank 0's may appear
init = copy.deepcopy(unwrap(learn.model).state_dict())
hist = learn.fit()
res = dict(rank=rank(), world=world_size(), distributed=is_distributed(), before=before, init=init,
           final=copy.deepcopy(unwrap(learn.model).state_dict()), history=hist, n_batches=len(learn.train_dl),
           sampler=type(learn.train_dl.sampler).__name__, wrapped=type(learn.model).__name__)

# a NaN on rank 1 only must stop both ranks (no hang) with the same clear error
bad = Learner(nn.Linear(8, 2), dl, lambda m, b: loss_fn(m, b) + (float('nan') if rank() == 1 else 0.), device='cpu', quiet=True)
try: bad.fit(epochs=1); res['nan'] = None
except FloatingPointError as e: res['nan'] = str(e)

torch.save(res, out/f'rank{rank()}.pt')
cleanup_distributed()
