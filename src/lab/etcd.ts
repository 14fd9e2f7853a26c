// A real etcd (Debian's etcd-server) for the fleet tests and bench:etcd, run inside a
// topology namespace and bound to an address of it, with its data in a temporary
// directory. `timeout` bounds its life whatever happens to the test; it is
// stopped by the PID we started, and its directory is removed.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCommand, stopProcess, type Topology } from './topology';

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

export interface TestPki {
  ca: string;
  server: EtcdTlsFiles;
  client: { cert: string; key: string };
  /** A client certificate from another CA, which etcd must refuse. */
  rogue: { cert: string; key: string };
}

/** A CA, a server certificate for address and client certificates, made with openssl in dir. */
export async function makePki(dir: string, address: string): Promise<TestPki> {
  const openssl = async (args: string[]): Promise<void> => {
    const result = await runCommand('openssl', args, 30_000);
    if (result.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
  };
  const file = (name: string): string => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = async (name: string): Promise<void> =>
    openssl(['req', '-x509', ...ec, '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`), '-days', '2', '-subj', `/CN=${name}`]);
  const makeCert = async (name: string, ca: string, ext: string): Promise<void> => {
    writeFileSync(file(`${name}.ext`), ext);
    await openssl(['req', ...ec, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${name}`]);
    await openssl(['x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.pem`), '-CAkey', file(`${ca}.key`), '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`)]);
  };
  await makeCa('ca');
  await makeCa('rogue-ca');
  await makeCert('server', 'ca', `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await makeCert('client', 'ca', 'extendedKeyUsage=clientAuth\n');
  await makeCert('rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
  return {
    ca: file('ca.pem'),
    server: { ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') },
    client: { cert: file('client.pem'), key: file('client.key') },
    rogue: { cert: file('rogue.pem'), key: file('rogue.key') },
  };
}
