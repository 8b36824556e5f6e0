#!/usr/bin/env bash
# The documentation site, built offline from the notebooks as committed (outputs included; nothing is
# executed): docs/ + README.md + nbs/*.ipynb -> _build/html. Needs the docs extra: pip install -e ".[docs]".
#   ./tests/build_docs.sh                     # the site from nbs/
#   DOCS_NBS=/tmp/executed ./tests/build_docs.sh   # the same site from another folder of notebooks
# Open _build/html/index.html, or serve it: python -m http.server -d _build/html -b 127.0.0.1 8000
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
NBS="${DOCS_NBS:-nbs}"
command -v jupyter-book >/dev/null || { echo "build_docs: jupyter-book not found; install the docs extra: pip install -e \".[docs]\"" >&2; exit 1; }
python docs/assemble.py --nbs "$NBS" --out _build/book
rm -rf _build/html _build/.doctrees _build/jupyter_execute
# --path-output . puts the site in ./_build/html (jupyter-book appends _build/)
jupyter-book build _build/book --path-output . --all -q 2>&1 | grep -v -E "^\s*$" || true
[ -f _build/html/index.html ] || { echo "build_docs: no _build/html/index.html: the build failed (run again without -q: jupyter-book build _build/book --path-output .)" >&2; exit 1; }
echo "== docs: _build/html ($(du -sh _build/html | cut -f1)) in $(( $(date +%s) - t0 )) s"
