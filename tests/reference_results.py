#!/usr/bin/env python
"""The committed reference results: each paper's quick run, as the notebooks' closing notes and the README show it.

    for p in err tirg identify twobranch drilldown rrt text2scene; do erret reproduce $p --quick --out RUNS; done
    python tests/reference_results.py RUNS          # -> results/quick/<paper>/ and docs/figures/<paper>.png

results/quick/<paper>/ gets the run's results.json and config.json as written, and a results.md without the
figure links; docs/figures/<paper>.png is one figure of the run shrunk to a small PNG for the README (the same
functions draw these figures in the executed notebooks). Papers missing from RUNS are left as they are.
"""
import json, shutil, sys
from pathlib import Path
from PIL import Image
from erret.results import load_results, results_markdown

ROOT = Path(__file__).resolve().parent.parent
FIGURES = {'err': 'lesson_examples.png', 'tirg': 'reconstruction.png', 'identify': 'fig6_saliency.png',
           'twobranch': 'phrase_boxes.png', 'drilldown': 'recall_vs_turn.png', 'rrt': 'rerank_grid.png',
           'text2scene': 'fig2_3_steps.png'}
WIDTH = {'rrt': 420}   # px (default 900); the run's figures are 1.5-2.5k px wide, RRT's grid is tall

def shrink(src: Path, dst: Path, width: int = 900):
    im = Image.open(src).convert('RGB')
    if im.width > width: im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(dst, optimize=True)

def main(runs: Path):
    figs = ROOT / 'docs' / 'figures'; figs.mkdir(parents=True, exist_ok=True)
    for paper, fig in FIGURES.items():
        src = runs / paper
        if not (src / 'results.json').exists(): print(f"{paper}: no {src / 'results.json'}, left as it is"); continue
        d = load_results(src)
        if d['preset'] != 'quick': sys.exit(f"{src}: preset {d['preset']!r}, expected 'quick'")
        out = ROOT / 'results' / 'quick' / paper; out.mkdir(parents=True, exist_ok=True)
        for f in ('results.json', 'config.json'): shutil.copy(src / f, out / f)
        (out / 'results.md').write_text(results_markdown({**d, 'figures': []}), encoding='utf-8')
        msg = f"{paper}: results/quick/{paper} ({d['runtime_s']:.0f} s run)"
        if (src / fig).exists(): shrink(src / fig, figs / f'{paper}.png', WIDTH.get(paper, 900)); msg += f", docs/figures/{paper}.png {(figs / f'{paper}.png').stat().st_size / 1024:.0f} KB"
        print(msg)

if __name__ == '__main__':
    if len(sys.argv) != 2: sys.exit(__doc__)
    main(Path(sys.argv[1]))
