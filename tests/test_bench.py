"erret.bench: a tiny run writes a schema-valid bench.json; the registry and the CLI path work."
import json
import pytest

from erret.core import ErretError
from erret.bench import BENCHMARKS, register_bench, bench_entry, validate_bench, run_bench

KEYS = {'name', 'unit', 'value', 'baseline', 'baseline_value', 'params'}


def test_tiny_run_schema(tmp_path):
    res = run_bench(tmp_path, only='recall_eval', n_gallery=2000, n_query=200, dim=32, k=10, seed=1)
    on_disk = json.loads((tmp_path / 'bench.json').read_text())
    assert on_disk == res
    validate_bench(on_disk)
    names = {e['name'] for e in on_disk['benchmarks']}
    for n in ('gemm_floor', 'argsort_full', 'topk_chunked', 'faiss_flat', 'count_rank', 'topk_vs_argsort',
              'topk_over_gemm', 'faiss_vs_topk', 'R@1', 'R@10'):
        assert f'recall_eval/{n}' in names
    for e in on_disk['benchmarks']:
        assert set(e) == KEYS
        assert isinstance(e['value'], float) and isinstance(e['params'], dict)
        assert (e['baseline'] is None) == (e['baseline_value'] is None)
        if e['baseline'] is not None: assert e['baseline'] in names       # baselines are figures of the same run
    by = {e['name']: e for e in on_disk['benchmarks']}
    assert by['recall_eval/R@1']['params']['agree'] and by['recall_eval/R@10']['params']['agree']
    assert len(set(by['recall_eval/R@1']['params']['by_method'].values())) == 1
    assert 0 <= by['recall_eval/R@1']['value'] <= by['recall_eval/R@10']['value'] <= 100
    p = by['recall_eval/topk_chunked']['params']
    assert (p['n_gallery'], p['n_query'], p['dim'], p['k'], p['seed']) == (2000, 200, 32, 10, 1)
    r = by['recall_eval/topk_vs_argsort']
    assert r['unit'] == 'x' and r['value'] == pytest.approx(by['recall_eval/argsort_full']['value'] / by['recall_eval/topk_chunked']['value'])


def test_argsort_subset_is_scaled(tmp_path):
    res = run_bench(tmp_path, only='recall_eval', n_gallery=1000, n_query=100, dim=16, k=5, argsort_queries=25)
    e = {e['name']: e for e in res['benchmarks']}['recall_eval/argsort_full']
    assert e['params']['scaled_from_subset'] and e['params']['argsort_queries'] == 25
    assert e['value'] == pytest.approx(e['params']['measured_s'] * 4)


def test_registry_and_only(tmp_path):
    @register_bench('_t')
    def _t(quick=False): return [bench_entry('_t/x', 's', 1.0, quick=quick)]
    try:
        res = run_bench(tmp_path, quick=True, only='_t', n_gallery=5)      # n_gallery not passed to _t
        assert res['benchmarks'] == [bench_entry('_t/x', 's', 1.0, quick=True)]
        with pytest.raises(ErretError, match='unknown benchmark'): run_bench(tmp_path, only=['_t', 'nope'])
    finally: del BENCHMARKS['_t']


def test_validate_errors():
    good = bench_entry('a', 's', 1.0)
    validate_bench({'benchmarks': [good]})
    with pytest.raises(ErretError, match="'value' must be a finite number"): validate_bench({'benchmarks': [{**good, 'value': float('nan')}]})
    with pytest.raises(ErretError, match='missing field'): validate_bench({'benchmarks': [{'name': 'a'}]})
    with pytest.raises(ErretError, match="'benchmarks' list"): validate_bench({'bench': []})


def test_failed_run_leaves_no_file(tmp_path):
    @register_bench('_bad')
    def _bad(quick=False): return [{'name': 'oops'}]
    try:
        with pytest.raises(ErretError, match='missing field'): run_bench(tmp_path, only='_bad')
        assert not (tmp_path / 'bench.json').exists()
    finally: del BENCHMARKS['_bad']
