#!/usr/bin/env bash
# The main job: install what is missing, start the embedded Triton, analyze the sample clip,
# print the summary table and write the JSON report to samples/sample.report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tiktok-analyzer analyze samples/sample.mp4 --out samples/sample.report.json "$@"
