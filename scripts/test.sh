#!/usr/bin/env bash
# npm test: type-check, then the unit project (no root needed); as root, also
# build dist/ and run the system project (namespaces, TAP devices, Docker,
# Open vSwitch). Without root the system tests are listed as not run, with
# the reason and the command that runs them. Arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  npx tsc -p tsconfig.json
  exec npx vitest run "$@"
fi

npx tsc -p tsconfig.json --noEmit
npx vitest run --project unit "$@"
files=$(cd test/integration && ls -- *.test.ts)
echo
echo "System tests not run: they need root (network namespaces, TAP devices, Docker); run them with: sudo npm run test:system"
for f in $files; do echo "  not run (needs root): test/integration/$f"; done
