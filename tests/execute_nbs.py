#!/usr/bin/env python
"""Re-execute notebooks in place so that their committed outputs come from a real run (issue 18).

    python tests/execute_nbs.py nbs/10_err.ipynb            # one notebook
    python tests/execute_nbs.py nbs/0[1-7]*.ipynb nbs/[1-5]*.ipynb   # the executed set (see EXECUTED below)
    python tests/execute_nbs.py --check                      # which committed notebooks have outputs, their size

Each notebook runs top to bottom in a fresh kernel from its own folder, exactly as a reader would run it
(IN_TEST unset: a cell that picks its size with IN_TEST takes the quick size, the walkthroughs' small
examples stay small, and each paper notebook ends with its committed quick reference run; the data world and
caches come from $ERRET_DATA as usual). On success the outputs are written back, a provenance line under the title says which
preset, commit and machine produced them and how long it took, and `nbdev_clean` strips the execution noise
(settings.ini has clear_all = False, so outputs stay). A notebook that fails is left untouched.
"""
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path
from unittest.mock import patch

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
MARK = '> **Outputs**'               # the provenance cell starts with this; replaced on every run
MAX_MB = 2.0
EXECUTED = ['01_world', '02_datasets', '04_metrics', '05_learner', '06b_proposals', '07_viz',     # core notebooks with figures
            '10_err', '20_tirg', '30_excitation', '31_identify', '40_drilldown', '41_rrt', '42_text2scene', '50_two_branch']

def git(*a) -> str:
    return subprocess.run(['git', *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

def provenance(secs: float, n_skipped: int = 0) -> str:
    commit, dirty = git('rev-parse', '--short', 'HEAD'), bool(git('status', '--porcelain', '--', 'erret'))   # the library the notebook ran
    import torch
    cores, gpu = os.cpu_count(), torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'
    return (f"{MARK} below come from a real run of this notebook outside `nbdev_test` (a cell that picks its size with `IN_TEST` "
            f"takes the quick size; the walkthrough's small examples stay small; the quick preset's results are in the closing note), "
            f"library code at commit `{commit}`{' plus uncommitted edits' if dirty else ''}, executed {time.strftime('%Y-%m-%d')} "
            f"on {cores} CPU cores ({platform.machine()}, {gpu}) in **{secs / 60:.1f} min**. "
            + (f"{n_skipped} GPU cell{'s' * (n_skipped > 1)} left without output. " if n_skipped else '')
            + "Re-run it with `python tests/execute_nbs.py nbs/<this notebook>`.")

def set_provenance(nb, text: str):
    cells = [c for c in nb.cells if not (c.cell_type == 'markdown' and c.source.startswith(MARK))]
    at = next((i + 1 for i, c in enumerate(cells) if c.cell_type == 'markdown' and c.source.lstrip().startswith('# ')), 0)
    cells.insert(at, nbformat.v4.new_markdown_cell(text))
    nb.cells = cells

def skipped(src: str, gpu: bool) -> bool:
    "Cells a reader's run skips as nbdev_test does: `#| eval: false`, and `#| cuda` without a GPU (their outputs stay empty)"
    d = {l.strip().replace(' ', '') for l in src.split('\n') if l.strip().startswith('#|')}
    return '#|eval:false' in d or ('#|cuda' in d and not gpu)

def execute(path: Path, timeout: int) -> float:
    import torch
    nb = nbformat.read(path, as_version=4)
    skip = {i: c.source for i, c in enumerate(nb.cells) if c.cell_type == 'code' and skipped(c.source, torch.cuda.is_available())}
    for i in skip: nb.cells[i].source = '# skipped here: a GPU cell (or eval: false)'
    env = {k: v for k, v in os.environ.items() if k not in ('IN_TEST', 'MPLBACKEND')}   # MPLBACKEND=Agg would keep figures out of the outputs
    env.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
    t0 = time.time()
    with patch.dict(os.environ, env, clear=True):                          # the kernel inherits this environment
        NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    secs = time.time() - t0
    for i, src in skip.items(): nb.cells[i].source, nb.cells[i].outputs = src, []
    set_provenance(nb, provenance(secs, len(skip)))
    nbformat.write(nb, path)
    subprocess.run(['nbdev_clean', '--fname', str(path)], cwd=ROOT, check=True)
    return secs

def size_mb(path: Path) -> float: return path.stat().st_size / 2**20

def n_outputs(path: Path) -> int:
    return sum(len(c.get('outputs', [])) for c in json.loads(path.read_text())['cells'] if c['cell_type'] == 'code')

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='*', type=Path)
    ap.add_argument('--timeout', type=int, default=3600, help='seconds per cell')
    ap.add_argument('--check', action='store_true', help='list the executed set: outputs and size of each notebook')
    a = ap.parse_args()
    if a.check:
        bad = 0
        for n in EXECUTED:
            p = ROOT / 'nbs' / f'{n}.ipynb'; k, mb = n_outputs(p), size_mb(p)
            prov = MARK in p.read_text()
            ok = k > 0 and prov and mb <= MAX_MB; bad += not ok
            print(f"{'ok ' if ok else 'BAD'} {p.name:24s} {k:4d} outputs {mb:5.2f} MB {'provenance' if prov else 'no provenance line'}")
        sys.exit(1 if bad else 0)
    for p in a.notebooks:
        print(f"executing {p} ...", flush=True)
        try: secs = execute(p.resolve(), a.timeout)
        except Exception as e:
            print(f"FAILED {p}: {type(e).__name__}: {str(e)[-2000:]}", flush=True); continue
        print(f"{p}: {secs / 60:.1f} min, {n_outputs(p)} outputs, {size_mb(p):.2f} MB"
              + (f"  (over {MAX_MB} MB: lower a figure's dpi or trim a printout)" if size_mb(p) > MAX_MB else ''), flush=True)

if __name__ == '__main__': main()
