#!/usr/bin/env bash
# scripts/setup.sh: makes this machine ready for tsvtep's lab, tests and
# benchmarks: the system packages below (apt-get, on Debian 12 / Ubuntu 24.04),
# then the npm dependencies and the build (npm ci).
#
# Idempotent: a package already installed is left alone (and without any
# missing, apt-get is not run at all); npm ci runs only when node_modules is
# older than package-lock.json, the addon is missing or older than native/, or
# dist/ is missing. A second run changes nothing and says so. Exit 1 with one line when something must be
# done by hand (no root for apt-get, no apt-get, Node older than 20).
set -euo pipefail
cd "$(dirname "$0")/.."

# The one list of system packages (.ci/run and the README's commands use this
# script). Package, then a command it provides, to tell on any distribution
# whether it is there.
PACKAGES=(
  # tsvtep itself and `tsvtep lab`
  "iproute2 ip"                   # ip, bridge: TAPs, bridges, namespaces
  "ethtool ethtool"               # TAP offloads (tsvtep doctor), tests and benchmarks
  "iputils-ping ping"             # lab check, tests, benchmarks
  "procps sysctl"                 # sysctl, ps
  # tests and benchmarks
  "iperf3 iperf3"                 # TCP and UDP load
  "tcpdump tcpdump"               # what goes over the underlay
  "curl curl"                     # control-interface tests: HTTP as another user, over the Unix socket
  "iptables iptables"             # fault injection (dropped ICMP, filtered paths)
  "openvswitch-switch ovs-vsctl"  # Open vSwitch bridges
  "docker.io dockerd"             # Docker networks by name
  "busybox-static busybox"        # the containers' image in the Docker tests
  "prometheus promtool"           # the metrics' exposition format
  "etcd-server etcd"              # the etcd control plane's tests and bench:etcd
  "etcd-client etcdctl"           # etcd tests: reading and writing keys by hand
  "openssl openssl"               # etcd TLS tests: a CA and client certificates
  "gobgpd gobgpd"                 # BGP EVPN (--evpn) tests: gobgpd and the gobgp CLI
  "golang-github-osrg-gobgp-dev gobgpd"  # GoBGP's API .proto files, read by --evpn (no command of its own)
  "frr vtysh"                     # EVPN interop tests: FRR's zebra and bgpd with kernel vxlan
  # building the native addon from source (node-gyp), and the hostile-peer scripts
  "python3 python3"
  "make make"
  "g++ g++"
)

say() { echo "setup: $*"; }

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  say "Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none)); Debian 12 and Ubuntu 24.04 ship 18:"
  say "  install it from https://nodejs.org/en/download (NodeSource packages or nvm), then run this again"
  exit 1
fi

missing=()
for entry in "${PACKAGES[@]}"; do
  read -r package command <<<"$entry"
  if command -v dpkg-query >/dev/null; then
    [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
  else
    command -v "$command" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$command" >/dev/null || missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  say "system packages: all ${#PACKAGES[@]} installed, nothing to do"
elif ! command -v apt-get >/dev/null; then
  say "no apt-get here: install these by hand (Debian names; on Fedora: iproute ethtool iputils procps-ng iperf3 tcpdump curl"
  say "  iptables openvswitch moby-engine busybox prometheus etcd openssl frr python3 make gcc-c++), then run this again:"
  say "  ${missing[*]}"
  exit 1
elif [ "$(id -u)" != 0 ]; then
  say "missing ${missing[*]}: run as root (sudo $0) to install them with apt-get"
  exit 1
else
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci runs the package's install (the addon: a prebuilt binary, else
# node-gyp) and prepare (tsc) scripts.
# node-gyp-build (npm ci's install step) loads an existing build/Release, else
# prebuilds/, and compiles only when there is neither. After a pull that
# changed native/, a checkout's build is stale: remove it (and a prebuilds/ left
# by npm pack), so npm ci compiles the addon again instead of loading old code.
addon_stale() {
  local built=build/Release/tsvtep_native.node source
  [ -f "$built" ] || return 1
  for source in native/* binding.gyp; do [ "$source" -nt "$built" ] && return 0; done
  return 1
}
if addon_stale; then
  say "native addon older than native/: removing build/ and prebuilds/ so that it is compiled again"
  rm -rf build prebuilds
fi
addon_built() { [ -f build/Release/tsvtep_native.node ] || ls prebuilds/linux-*/*.node >/dev/null 2>&1; }
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ] &&
  [ node_modules/.package-lock.json -nt package.json ] && addon_built && [ -f dist/src/cli.js ]; then
  say "npm dependencies: node_modules matches package-lock.json, addon and dist/ built, nothing to do"
else
  say "npm ci (dependencies, native addon, TypeScript build)"
  npm ci --no-audit --no-fund
fi
