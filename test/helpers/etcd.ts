// A real etcd (Debian's etcd-server) for the fleet tests, run inside a test
// namespace and bound to an address of it, with its data in a temporary
// directory. `timeout` bounds its life whatever happens to the test; it is
// stopped by the PID we started, and its directory is removed.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stopProcess, type Topology } from '../../src/lab/topology';

export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdInstance {
  /** The client URL, e.g. http://10.0.1.1:2379. */
  url: string;
  dir: string;
  log(): string;
  /** etcdctl against this instance, with its arguments. */
  ctl(args: string[], timeoutMs?: number): Promise<string>;
  /** Stops etcd (SIGTERM to its PID); the data stays for start(). */
  stop(): Promise<void>;
  /** Starts it again on the same data. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  destroy(): Promise<void>;
}

/** Lifetime limit of one etcd process, seconds: longer than any test here. */
const MAX_LIFETIME_S = 600;

/** Starts etcd in ns on address (already configured there) and waits until it answers. */
export async function startEtcd(topology: Topology, ns: string, address: string, tls?: { server: EtcdTlsFiles }): Promise<EtcdInstance> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsvtep-etcd-'));
  const scheme = tls ? 'https' : 'http';
  const url = `${scheme}://${address}:2379`;
  let child: ChildProcess | undefined;
  let output = '';
  const tlsArgs = tls
    ? ['--cert-file', tls.server.cert, '--key-file', tls.server.key, '--trusted-ca-file', tls.server.ca, '--client-cert-auth']
    : [];
  const ctlTls = tls ? ['--cacert', tls.server.ca, '--cert', tls.server.cert, '--key', tls.server.key] : [];
  const ctl = async (args: string[], timeoutMs = 15_000): Promise<string> =>
    topology.execOk(ns, ['env', 'ETCDCTL_API=3', 'etcdctl', '--endpoints', url, '--dial-timeout', '2s', ...ctlTls, ...args], timeoutMs);

  const start = async (): Promise<void> => {
    child = topology.spawn(ns, [
      'timeout', '-k', '5', String(MAX_LIFETIME_S),
      'etcd', '--name', 'test', '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'test=http://127.0.0.1:2380',
      ...tlsArgs,
    ]);
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => (output = (output + d).slice(-20_000)));
    child.stderr?.on('data', (d: string) => (output = (output + d).slice(-20_000)));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`etcd in ${ns} exited ${child.exitCode}: ${output.slice(-2000)}`);
      try {
        await ctl(['endpoint', 'health'], 5_000);
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`etcd in ${ns} did not answer: ${(error as Error).message}\n${output.slice(-2000)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };
  const stop = async (): Promise<void> => {
    if (child) await stopProcess(child, 5_000);
    child = undefined;
  };
  await start();
  return {
    url,
    dir,
    log: () => output,
    ctl,
    stop,
    start,
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Gives the underlay switch of a one-segment topology an address (10.0.1.1/24), where etcd can listen. */
export async function addressTheSwitch(topology: Topology, cidr = '10.0.1.1/24'): Promise<string> {
  await topology.execOk(topology.coreNs, ['ip', 'addr', 'add', cidr, 'dev', 'sw']);
  return cidr.split('/')[0];
}
