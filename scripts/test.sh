#!/usr/bin/env bash
# The README's test command: set up (pinned versions) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -c constraints.txt -e ".[dev,postgres]"
python3 -m pytest -q "$@"
