"The `erret` console script as a user runs it: real subprocesses, exit codes, files written."
import hashlib, json, subprocess, sys
from pathlib import Path

def erret(*args, **kw):
    return subprocess.run([sys.executable, '-m', 'erret', *map(str, args)], capture_output=True, text=True, **kw)

def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob('*')) if p.is_file()}

def test_help():
    r = erret('--help')
    assert r.returncode == 0 and 'reproduce' in r.stdout and 'world' in r.stdout and 'bench' in r.stdout

def test_world_is_deterministic(tmp_path):
    for d in ('a', 'b'):
        r = erret('world', '--out', tmp_path/d, '--format', 'vg', '--n-images', 12, '--seed', 3, '--size', 32)
        assert r.returncode == 0, r.stderr
    a, b = tree_digest(tmp_path/'a'), tree_digest(tmp_path/'b')
    assert a == b and any(k.endswith('region_descriptions.json') for k in a)
    regions = json.loads(next((tmp_path/'a').rglob('region_descriptions.json')).read_text())
    assert len(regions) == 12

def test_world_bad_args(tmp_path):
    r = erret('world', '--out', tmp_path, '--n-images', 0)
    assert r.returncode == 2 and r.stderr.startswith('erret: error:') and r.stderr.count('\n') == 1

def test_reproduce_errors(tmp_path):
    r = erret('reproduce', 'nope')
    assert r.returncode == 2 and "unknown paper 'nope'" in r.stderr and r.stderr.count('\n') == 1
    r = erret('reproduce', 'tirg', '--data', tmp_path/'missing')
    assert r.returncode == 2 and r.stderr.count('\n') == 1

def test_bench_quick(tmp_path):
    r = erret('bench', '--quick', '--out', tmp_path)
    assert r.returncode == 0, r.stderr
    b = json.loads((tmp_path/'bench.json').read_text())
    names = {e['name'].split('/')[-1] for e in b['benchmarks']}
    assert {'topk_chunked', 'argsort_full', 'faiss_flat', 'gemm_floor'} <= names
    for e in b['benchmarks']:
        assert isinstance(e['value'], float) and e['unit']
