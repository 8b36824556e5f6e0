import os
os.environ.setdefault('MPLBACKEND', 'Agg')
import matplotlib
matplotlib.use('Agg')
import pytest


@pytest.fixture(scope='module')
def one_thread():
    "Tiny models: one torch/BLAS thread avoids oversubscription on a shared 2-core machine (`erret.core.cpu_threads`)"
    from erret.core import cpu_threads
    with cpu_threads(1): yield
