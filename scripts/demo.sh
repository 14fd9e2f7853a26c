#!/usr/bin/env bash
# The main job on one machine, from a clean clone: installs what is missing
# (scripts/setup.sh), builds, then `tsvtep lab up` (two hosts in network
# namespaces, a container each, tsvtep joining their bridges over VXLAN) and
# `tsvtep lab check` (ping, isolation, a TCP transfer, FDB and counters).
# Needs root (sudo). The lab stays up to be explored; the last lines say how
# to remove it. Exit status: that of the first step that failed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
npm run build --silent
tsvtep=(node dist/src/cli.js)
"${tsvtep[@]}" lab up
echo
"${tsvtep[@]}" lab check
echo
echo "The lab stays up. Here \`tsvtep\` is \`node $(pwd)/dist/src/cli.js\` (\`sudo npm install -g .\` installs the command);"
echo "remove the lab with: sudo node dist/src/cli.js lab down"
