#!/usr/bin/env bash
# The npm package as a user gets it: npm pack, then npm install -g of the
# tarball into a temporary prefix on a PATH without a compiler, then
# `tsvtep --version`, `tsvtep doctor` and (as root) `tsvtep lab up`, `lab check`
# and `lab down` from that installation. Fails if the package holds tests or
# benchmarks, if it lacks the prebuilt addon for this platform, or if the
# installation compiled anything. Leaves nothing behind but the tarball.
set -euo pipefail
cd "$(dirname "$0")/.."

platform="linux-$(node -p process.arch)"
tarball=$(npm pack --silent | tail -1)
echo "check-package: $tarball, $(tar -tzf "$tarball" | wc -l) files"
contents=$(tar -tzf "$tarball")
if grep -E '^package/(dist/(test|bench)|test|bench)/' <<<"$contents"; then
  echo "check-package: the package holds tests or benchmarks (above)" >&2
  exit 1
fi
grep -qx "package/prebuilds/$platform/tsvtep.node" <<<"$contents" || {
  echo "check-package: no prebuilt addon for $platform in the package" >&2
  exit 1
}

prefix=$(mktemp -d /tmp/tsvtep-package.XXXXXX)
lab=pk$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
cleanup() {
  if [ "$(id -u)" = 0 ] && [ -x "$prefix/bin/tsvtep" ]; then "$prefix/bin/tsvtep" lab down --prefix "$lab" >/dev/null 2>&1 || true; fi
  rm -rf "$prefix"
}
trap cleanup EXIT

# No compiler, no Python: a build from source would fail, so this shows the prebuilt binary is used.
mkdir -p "$prefix/no-compiler"
for tool in cc gcc g++ c++ make python3 python; do printf '#!/bin/sh\necho "%s: not here (check-package)" >&2; exit 127\n' "$tool" >"$prefix/no-compiler/$tool"; chmod +x "$prefix/no-compiler/$tool"; done
# --allow-scripts: npm 11 runs no install script of a global package unless allowed (npm 10 ignores it).
install() { npm install -g --prefix "$1" --allow-scripts=tsvtep --no-audit --no-fund --prefer-offline "$2"; }
PATH="$prefix/no-compiler:$PATH" CC=false CXX=false PYTHON=false install "$prefix" "./$tarball"
installed="$prefix/lib/node_modules/tsvtep"
if [ -e "$installed/build" ]; then
  echo "check-package: the installation built the addon from source ($installed/build)" >&2
  exit 1
fi

tsvtep="$prefix/bin/tsvtep"
version=$("$tsvtep" --version)
[ "$version" = "$(node -p "require('./package.json').version")" ] || { echo "check-package: tsvtep --version says $version" >&2; exit 1; }
echo "check-package: tsvtep --version: $version"
if [ "$(id -u)" = 0 ]; then
  "$tsvtep" doctor | grep -E '^  (pass|FAIL)  native addon'
  "$tsvtep" lab up --prefix "$lab" >/dev/null
  "$tsvtep" lab check --prefix "$lab" | tail -3
  "$tsvtep" lab down --prefix "$lab" | tail -1
else
  echo "check-package: not root, so lab up is not tried"
fi
echo "check-package: the package installs and runs without a compiler"

# Where no prebuilt binary fits (another architecture), the install script builds from source.
work=$(mktemp -d /tmp/tsvtep-package-src.XXXXXX)
tar -C "$work" -xzf "$tarball"
rm -rf "$work/package/prebuilds"
tar -C "$work" -czf "$work/no-prebuilds.tgz" package
install "$work/prefix" "$work/no-prebuilds.tgz" >/dev/null
built=$(ls "$work/prefix/lib/node_modules/tsvtep/build/Release/"*.node 2>/dev/null || true)
addon=$("$work/prefix/bin/tsvtep" doctor | grep -E '^  (pass|FAIL)  native addon' || true)
rm -rf "$work"
if [ -z "$built" ] || [[ "$addon" != *pass* ]]; then
  echo "check-package: without a prebuilt binary the install did not build the addon from source (${addon:-no doctor line})" >&2
  exit 1
fi
echo "check-package: without a prebuilt binary the install builds the addon from source, and it loads"
