// Starts the EVPN source (gobgpd's gRPC API) and joins it to the daemon
// (join.ts), as attach.ts does for etcd. Loaded only with --evpn: gRPC and
// protobufjs are not small.

import type { Logger } from 'pino';
import { canonicalAddress } from '../core/address';
import type { DaemonConfig, EvpnConfig } from '../config';
import type { Daemon } from '../daemon';
import { deviceAddress, LinkError } from '../io/link';
import { StartupError } from '../startup-errors';
import { EvpnSource } from './evpn/evpn-source';
import { GobgpClient } from './evpn/gobgp-client';
import { loadGobgpApi, ProtoError, type GobgpApi } from './evpn/proto';
import { joinControlPlane } from './join';
import type { RunningControlPlane } from './source';

/** What the EVPN source needs from the host, checked before any TAP exists. */
export interface PreparedEvpn {
  config: DaemonConfig & { evpn: EvpnConfig };
  api: GobgpApi;
  vtep: string;
}

/** Loads GoBGP's API files and finds the VTEP address; throws StartupError (one line, naming the Debian package) for what the user must fix. */
export async function prepareEvpn(config: DaemonConfig & { evpn: EvpnConfig }): Promise<PreparedEvpn> {
  let api: GobgpApi;
  try {
    api = loadGobgpApi();
  } catch (error) {
    if (error instanceof ProtoError) throw new StartupError(error.message);
    throw error;
  }
  let vtep: string;
  try {
    vtep = canonicalAddress(config.local ?? (await deviceAddress(config.dev as string)));
  } catch (error) {
    if (error instanceof LinkError) throw new StartupError(error.message);
    throw error;
  }
  return { config, api, vtep };
}

/** Starts the EVPN source for daemon and joins the two; local MACs and IPs come from the TAPs, as for etcd --etcd-fdb. */
export function attachEvpn(daemon: Daemon, prepared: PreparedEvpn, log: Logger): RunningControlPlane {
  const { config, api, vtep } = prepared;
  const evpn = config.evpn;
  const routerId = evpn.routerId ?? vtep;
  const evpnLog = log.child({ controlPlane: 'evpn' });
  const source = new EvpnSource({
    codec: api.codec,
    connect: () => new GobgpClient(api, evpn.api),
    api: evpn.api,
    originator: { routerId, asn: evpn.asn, vtep },
    log: evpnLog,
  });
  const running = joinControlPlane(daemon, source, { fdb: true, suppressArp: config.suppressArp }, evpnLog);
  log.info({ api: evpn.api, vtep, routerId, asn: evpn.asn }, `EVPN through gobgpd at ${evpn.api}: VTEP ${vtep}, RD ${routerId}:n, RT ${evpn.asn}:VNI`);
  return running;
}
