#!/usr/bin/env bash
# First-run check (issue 17): wall time of `erret reproduce PAPER --quick` from an empty cache (cold) and again with
# that cache (warm), per paper, on this machine; the two runs must give identical numbers.
#   tests/cold_start.sh                 # all seven papers (about 2 hours on 2 cores)
#   tests/cold_start.sh tirg rrt        # some of them
#   FRESH_VENV=1 tests/cold_start.sh    # also time a fresh venv + `pip install -e .` first, and run from it
#   WARM=0 tests/cold_start.sh err      # cold runs only
# Prints a markdown table; logs (with the phase lines) and results stay in the printed folder.
set -euo pipefail
cd "$(dirname "$0")/.."
papers=("$@"); [ ${#papers[@]} -eq 0 ] && papers=(err tirg identify twobranch drilldown rrt text2scene)
root=$(mktemp -d /tmp/erret-cold.XXXXXX)
echo "logs and results: $root"
if [ -n "${FRESH_VENV:-}" ]; then
  t0=$(date +%s); python3 -m venv "$root/venv"; . "$root/venv/bin/activate"
  pip install -q -e . 2>&1 | grep -v "^WARNING: Location" || true
  echo "fresh venv + pip install -e .: $(( $(date +%s) - t0 )) s"
fi
echo
echo "| paper | cold (s) | warm (s) | same numbers |"
echo "|---|---|---|---|"
for p in "${papers[@]}"; do
  export ERRET_DATA="$root/$p-data"
  t0=$(date +%s); erret reproduce "$p" --quick --device cpu --out "$root/cold" > "$root/$p-cold.log" 2>&1
  t1=$(date +%s)
  if [ "${WARM:-1}" = 0 ]; then echo "| $p | $((t1 - t0)) | – | – |"; continue; fi
  erret reproduce "$p" --quick --device cpu --out "$root/warm" > "$root/$p-warm.log" 2>&1
  t2=$(date +%s)
  same=$(python - "$root/cold/$p/results.json" "$root/warm/$p/results.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
rows = lambda d: [(r['method'], r['setting'], r['metrics'], r['std']) for r in d['rows']]
print('yes' if rows(a) == rows(b) else 'NO')
PY
)
  echo "| $p | $((t1 - t0)) | $((t2 - t1)) | $same |"
done
