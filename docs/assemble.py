"""Assemble the Jupyter Book source of the erret site in one folder: docs/ + README.md (home page) + the notebooks.

The notebooks are copied as committed (outputs included, nothing is executed); nbdev's directive lines
(`#| export`, ...) and `#| hide` cells are left out, as on an nbdev site. Table-of-contents entries whose
file is missing (a notebook or page that has not landed yet) are dropped with a message, and the API
reference (Sphinx autodoc, one page per `erret` module) is appended.

Usage: python docs/assemble.py --nbs nbs --out _build/book
"""
import argparse, json, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIT_URL = 'https://github.com/erret/erret/blob/main'
SKIP_MODULES = {'__init__', '__main__', '_modidx'}


def clean_notebook(nb: dict) -> dict:
    "The notebook as a reader sees it: no `#| hide` cells, no nbdev directive lines, a Python kernel"
    cells = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'code':
            lines = src.split('\n')
            if any(l.strip() in ('#| hide', '#|hide') for l in lines): continue
            kept = [l for l in lines if not l.lstrip().startswith('#|')]
            if not ''.join(kept).strip() and not c.get('outputs'): continue   # only directives, e.g. `#| default_exp`
            c = {**c, 'source': '\n'.join(kept).strip('\n')}
        cells.append(c)
    md = dict(nb.get('metadata', {}))
    md.setdefault('kernelspec', {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'})
    md.setdefault('language_info', {'name': 'python'})
    return {**nb, 'cells': cells, 'metadata': md}


def readme_page(text: str) -> str:
    "README.md as the home page: links to repository files (not pages of the site) point at the repository"
    def fix(m):
        label, target = m.group(1), m.group(2)
        if re.match(r'^(https?:|mailto:|#)', target): return m.group(0)
        if re.match(r'^nbs/[^/]+\.ipynb$', target): return m.group(0)                 # a page of the site
        if target.startswith('docs/'): return f'[{label}]({target[5:]})'               # docs/ is the book's root (figures, pages)
        return f'[{label}]({GIT_URL}/{target.lstrip("./")})'
    return re.sub(r'\[([^\]]*)\]\(([^)\s]+)\)', fix, text)


def api_pages(out: Path) -> list[str]:
    "One autodoc page per erret module under out/api/; returns their toc names"
    (out / 'api').mkdir(parents=True, exist_ok=True)
    names = []
    for p in sorted((ROOT / 'erret').glob('*.py')):
        if p.stem in SKIP_MODULES: continue
        (out / 'api' / f'{p.stem}.md').write_text(
            f'# erret.{p.stem}\n\n```{{eval-rst}}\n.. automodule:: erret.{p.stem}\n   :members:\n```\n', encoding='utf-8')
        names.append(f'api/{p.stem}')
    (out / 'api.md').write_text(
        '# API reference\n\nEvery exported function and class of `erret`, by module, from the docstrings of the '
        'notebooks in `nbs/` (Sphinx autodoc). The notebooks themselves, under *Shared core*, show each one at work.\n',
        encoding='utf-8')
    return names


def toc_files(toc_text: str) -> list[str]:
    return re.findall(r'^\s*(?:-\s*)?(?:file|root):\s*(\S+)\s*$', toc_text, re.M)


def assemble(nbs: Path, out: Path, docs: Path = ROOT / 'docs') -> list[str]:
    "Write the book source to `out`; returns the toc entries that were dropped because their file is missing"
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    for p in docs.iterdir():
        if p.name in ('assemble.py', '_build', '__pycache__', 'README.md') or p.name.startswith('.'): continue
        if p.is_dir(): shutil.copytree(p, out / p.name, ignore=shutil.ignore_patterns('__pycache__'))
        else: shutil.copy2(p, out / p.name)
    (out / 'intro.md').write_text(readme_page((ROOT / 'README.md').read_text(encoding='utf-8')), encoding='utf-8')
    toc = (docs / '_toc.yml').read_text(encoding='utf-8')
    dropped = []
    for f in toc_files(toc):
        if f.startswith('nbs/'):
            src = nbs / (Path(f).name + '.ipynb')
            if src.exists():
                (out / 'nbs').mkdir(exist_ok=True)
                nb = clean_notebook(json.loads(src.read_text(encoding='utf-8')))
                (out / 'nbs' / src.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding='utf-8')
                continue
        elif any((out / (f + ext)).exists() for ext in ('', '.md', '.ipynb')): continue
        dropped.append(f)
    lines = [l for l in toc.split('\n') if not any(re.match(rf'^\s*-\s*file:\s*{re.escape(f)}\s*$', l) for f in dropped)]
    # a part whose every chapter was dropped goes too
    text, keep = '\n'.join(lines), []
    for block in re.split(r'(?m)^(?=  - caption:)', text):
        if block.lstrip().startswith('- caption:') and 'file:' not in block: continue
        keep.append(block)
    text = ''.join(keep).rstrip('\n') + '\n'
    api = api_pages(out)
    text += '  - caption: Library\n    chapters:\n      - file: api\n        sections:\n'
    text += ''.join(f'          - file: {a}\n' for a in api)
    (out / '_toc.yml').write_text(text, encoding='utf-8')
    missing = sorted(p.stem for p in nbs.glob('[0-9]*.ipynb') if f'nbs/{p.stem}' not in toc_files(text))
    if missing: print(f'assemble: notebooks in {nbs} not in docs/_toc.yml (not on the site): {", ".join(missing)}')
    return dropped


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', default=str(ROOT / 'nbs'), help='folder of the notebooks to render (default: nbs/)')
    ap.add_argument('--out', default=str(ROOT / '_build' / 'book'), help='book source folder to (re)write')
    a = ap.parse_args()
    dropped = assemble(Path(a.nbs), Path(a.out))
    if dropped: print(f'assemble: not on the site yet (file missing): {", ".join(dropped)}')
    sys.exit(0)
