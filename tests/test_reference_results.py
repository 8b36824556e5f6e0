"""The committed reference results (results/quick/<paper>/) must describe the code as it is: the quick preset's
config and the shipped weights of this checkout. A changed preset or retrained weights fail here until the runs are
redone (`tests/reference_results.py` says how), so the README and the notebooks never quote stale numbers."""
import importlib, json
from pathlib import Path
import pytest
from erret.cli import PAPERS
from erret.results import reference_results

ROOT = Path(__file__).resolve().parent.parent

@pytest.mark.parametrize('paper', list(PAPERS))
def test_reference_matches_code(paper):
    d = reference_results(paper)
    assert d['preset'] == 'quick' and len(d['seeds']) == 3
    saved = json.loads((ROOT / 'results' / 'quick' / paper / 'config.json').read_text())
    cls = getattr(importlib.import_module(PAPERS[paper]), saved['class'])
    now = {'class': cls.__name__, **cls.from_preset('quick').to_dict()}
    assert json.loads(json.dumps(now)) == saved, f"{paper}: the quick preset changed since results/quick/{paper} was run"
    for name, w in d.get('weights', {}).items():
        assert w['source'] == 'shipped', (paper, name, w)
        assert (ROOT / 'erret' / 'weights' / w['file']).exists(), f"{paper}: {w['file']} is no longer shipped"

def test_readme_figures():
    for paper in PAPERS: assert (ROOT / 'docs' / 'figures' / f'{paper}.png').stat().st_size < 200_000, paper
