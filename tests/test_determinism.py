"""The same numbers on every machine: a paper's results.json does not depend on how many threads the machine
gives torch (each `reproduce` pins its own thread count, and every run loads the shipped weights)."""
import json, os, subprocess, sys
import pytest

def _reproduce(paper: str, threads: int, tmp) -> dict:
    "`erret reproduce PAPER --smoke` in a fresh process with `threads` torch/OpenMP threads and an empty cache"
    env = {k: v for k, v in os.environ.items() if k not in ('PYTEST_CURRENT_TEST', 'IN_TEST')}
    env.update(ERRET_DATA=str(tmp / 'data'), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), ERRET_QUIET='1')
    code = (f"import torch; torch.set_num_threads({threads}); from erret.cli import main; "
            f"main(['reproduce', {paper!r}, '--smoke', '--device', 'cpu', '--out', {str(tmp / 'out')!r}])")
    subprocess.run([sys.executable, '-c', code], env=env, check=True, capture_output=True, timeout=600)
    return json.loads((tmp / 'out' / paper / 'results.json').read_text())

def _numbers(d: dict) -> list: return [(r['method'], r['setting'], r['metrics'], r['std']) for r in d['rows']]

def _check(paper, tmp_path):
    a, b = _reproduce(paper, 1, tmp_path / 't1'), _reproduce(paper, 3, tmp_path / 't3')
    assert a['weights'] == b['weights'] and all(w['source'] == 'shipped' for w in a['weights'].values()), a['weights']
    assert _numbers(a) == _numbers(b), f"{paper}: results differ between 1 and 3 threads"

@pytest.mark.parametrize('paper', ['tirg'])                    # ~75 s on 2 cores; the others under ERRET_SLOW=1
def test_same_numbers_any_thread_count(paper, tmp_path): _check(paper, tmp_path)

@pytest.mark.slow
@pytest.mark.parametrize('paper', ['err', 'identify', 'twobranch', 'drilldown', 'rrt', 'text2scene'])
def test_same_numbers_any_thread_count_slow(paper, tmp_path): _check(paper, tmp_path)
