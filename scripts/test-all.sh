#!/usr/bin/env bash
# Every test from a clean clone: scripts/setup.sh (system packages, npm ci),
# then npm test as root: the unit and the system projects. Ends with vitest's
# summary ("Tests  N passed (N)"); exit status non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "test-all: the system tests need root: sudo $0 (without root, npm test runs the unit tests only)" >&2
  exit 1
fi
scripts/setup.sh
npm test
