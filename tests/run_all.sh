#!/usr/bin/env bash
# The one test command: every notebook under nbdev_test (smoke presets), then pytest tests/ (which also builds the
# documentation site and checks it and the retrieval explorer in headless Chromium when the docs extra and
# chromium / chromium-driver are installed; screenshots in _build/screenshots/).
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
# generated worlds and the world-pretrained backbone are cached here, shared by both runners
export ERRET_DATA="${ERRET_DATA:-$PWD/.erret-test-data}"
t0=$(date +%s)
nbdev_test --n_workers 2 --timing
t1=$(date +%s)
echo "== nbdev_test: $((t1 - t0)) s"
python -m pytest tests -q -p no:cacheprovider --durations=10
echo "== pytest: $(( $(date +%s) - t1 )) s"
