import os
os.environ.setdefault('MPLBACKEND', 'Agg')
import matplotlib
matplotlib.use('Agg')
import pytest


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: long end-to-end runs (every paper\'s lab graded); skipped unless ERRET_SLOW=1')


def pytest_collection_modifyitems(config, items):
    "`@pytest.mark.slow` tests run only with ERRET_SLOW=1 (e.g. `ERRET_SLOW=1 pytest tests/test_lab.py`)"
    if os.environ.get('ERRET_SLOW'): return
    skip = pytest.mark.skip(reason='slow: set ERRET_SLOW=1 to run it')
    for item in items:
        if item.get_closest_marker('slow'): item.add_marker(skip)


@pytest.fixture(scope='module')
def one_thread():
    "Tiny models: one torch/BLAS thread avoids oversubscription on a shared 2-core machine (`erret.core.cpu_threads`)"
    from erret.core import cpu_threads
    with cpu_threads(1): yield


@pytest.fixture(scope='session')
def quirky(tmp_path_factory):
    "`quirky(format, n_images=60, seed=0, **world_kw)`: a folder in `format`'s real schema *with* real-data quirks, written once per session (`erret.datasets.write_quirky`)"
    made = {}
    def make(fmt, n_images=60, seed=0, **kw):
        key = (fmt, n_images, seed, tuple(sorted(kw.items())))
        if key not in made:
            from erret.datasets import write_quirky
            d = tmp_path_factory.mktemp(f'quirky-{fmt}')
            write_quirky(d, fmt, n_images=n_images, seed=seed, **kw)
            made[key] = d
        return made[key]
    return make


@pytest.fixture(autouse=True)
def _uncached(request, monkeypatch):
    "A test module that sets `UNCACHED = ('erret.rrt', ...)` computes features instead of filling the shared cache with keys of throw-away folders"
    for m in getattr(request.module, 'UNCACHED', ()):
        monkeypatch.setattr(f'{m}.cached', lambda key, fn, folder='features', what=None: fn())


@pytest.fixture
def reproduce_quirky(quirky, tmp_path):
    "`reproduce_quirky(reproduce, format, n_images=60, **kw)`: a paper's smoke preset on its quirky folder -> (results.json, injected quirks, log lines)"
    import json
    def run(reproduce, fmt, n_images=60, **kw):
        root = quirky(fmt, n_images=n_images)
        injected, logs = json.loads((root / 'erret_quirks.json').read_text()), []
        reproduce('smoke', data=root, out=tmp_path, device='cpu', log=logs.append, **kw)
        d = json.loads((tmp_path / 'results.json').read_text())
        assert all((tmp_path / f).exists() for f in d['figures'])
        return d, injected, logs
    return run
