// Issue 17, --evpn on the command line: what is wrong is one line, exit 2,
// before anything is touched.

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI_PATH } from '../../src/lab/process';

function tsvtep(args: string[]): { code: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { code: result.status, stderr: result.stderr };
}

describe('tsvtep --evpn usage errors', () => {
  it.each([
    ['no VTEP address', ['--vni', '100', '--bridge', 'br100', '--evpn', '127.0.0.1:50051'], 'tsvtep: --evpn: needs --local or --dev: the VTEP address EVPN announces'],
    ['an API address without port', ['--vni', '100', '--bridge', 'br100', '--local', '10.0.1.41', '--evpn', '127.0.0.1'], 'tsvtep: --evpn: not host:port (e.g. 127.0.0.1:50051)'],
    ['an IPv6 router ID', ['--vni', '100', '--bridge', 'br100', '--local', '10.0.1.41', '--evpn', '127.0.0.1:50051', '--evpn-router-id', 'fd00::1'], 'tsvtep: --evpn-router-id: fd00::1 is not an IPv4 address'],
    ['--evpn-asn without --evpn', ['--vni', '100', '--bridge', 'br100', '--peer', '10.0.1.42', '--evpn-asn', '65001'], 'tsvtep: --evpn-asn and --evpn-router-id go with --evpn ADDR:PORT (tsvtep --help lists options)'],
    ['neither --peer nor --evpn', ['--vni', '100', '--bridge', 'br100'], 'tsvtep: --peer: needs at least one peer (--peer ADDRESS), or --etcd URL or --evpn ADDR:PORT'],
    ['--etcd and --evpn together', ['--vni', '100', '--bridge', 'br100', '--local', '10.0.1.41', '--etcd', 'http://10.0.1.1:2379', '--evpn', '127.0.0.1:50051'], 'tsvtep: --evpn: give --etcd or --evpn, not both (one control plane at a time)'],
  ])('%s', (_what, args, message) => {
    const result = tsvtep(args);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([message]);
  });
});
