// Starts the etcd source and joins it to the daemon (join.ts). Loaded only
// with --etcd: the etcd client is heavy.

import { readFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { canonicalAddress } from '../core/address';
import type { DaemonConfig, EtcdConfig } from '../config';
import type { Daemon } from '../daemon';
import { StartupError } from '../startup-errors';
import { deviceAddress, routeTo } from '../io/link';
import { EtcdSource, type EtcdTls } from './etcd/source';
import { joinControlPlane } from './join';
import type { RunningControlPlane } from './source';

/** What the etcd source needs from the host, checked before anything is created. */
export interface PreparedEtcd {
  config: DaemonConfig & { etcd: EtcdConfig };
  vtep: string;
  tls: EtcdTls | undefined;
}

/** Reads the TLS files and finds the address to announce; throws StartupError for what the user must fix. */
export async function prepareEtcd(config: DaemonConfig & { etcd: EtcdConfig }): Promise<PreparedEtcd> {
  const tls = readTls(config.etcd);
  return { config, tls, vtep: await announcedAddress(config, config.etcd.endpoints) };
}

/** Starts the etcd source for daemon and joins the two. */
export function attachEtcd(daemon: Daemon, prepared: PreparedEtcd, log: Logger): RunningControlPlane {
  const { config, vtep, tls } = prepared;
  const etcd = config.etcd;
  const source = new EtcdSource({
    endpoints: etcd.endpoints,
    prefix: etcd.prefix,
    ttlSeconds: etcd.ttlSeconds,
    vtep,
    tls,
    log: log.child({ controlPlane: 'etcd' }),
  });
  return joinControlPlane(daemon, source, { fdb: etcd.fdb, suppressArp: config.suppressArp }, log);
}

function readTls(etcd: EtcdConfig): EtcdTls | undefined {
  if (etcd.ca === undefined && etcd.cert === undefined) return undefined;
  const read = (file: string, flag: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new StartupError(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
    }
  };
  return {
    ca: etcd.ca === undefined ? undefined : read(etcd.ca, '--etcd-ca'),
    cert: etcd.cert === undefined ? undefined : read(etcd.cert, '--etcd-cert'),
    key: etcd.key === undefined ? undefined : read(etcd.key, '--etcd-key'),
  };
}

/** The VTEP address the others should send to: --local, the address of --dev, or the one this host reaches etcd from. */
async function announcedAddress(config: DaemonConfig, endpoints: string[]): Promise<string> {
  if (config.local !== undefined) return canonicalAddress(config.local);
  if (config.dev !== undefined) return canonicalAddress(await deviceAddress(config.dev));
  for (const endpoint of endpoints) {
    const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
    try {
      const address = isIP(host) ? host : (await lookup(host)).address;
      const source = (await routeTo(address)).source;
      if (source !== undefined) return canonicalAddress(source);
    } catch {
      // Try the next endpoint.
    }
  }
  throw new StartupError(`cannot tell which address to announce to etcd (no route to ${endpoints.join(', ')}); give --local ADDRESS`);
}
