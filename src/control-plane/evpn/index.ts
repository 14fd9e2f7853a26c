// `--evpn`: wires the EVPN source to the running daemon. The source talks to
// gobgpd, the applier turns its state into peers and remote MAC entries
// through the daemon's runtime API, and the local MAC watch feeds it the
// containers behind this host's TAPs.

import type { Logger } from 'pino';
import { canonicalAddress } from '../../core/address';
import type { DaemonConfig, EvpnConfig } from '../../config';
import type { Daemon } from '../../daemon';
import { deviceAddress } from '../../io/link';
import { LocalMacWatch } from '../local-macs';
import { StateApplier } from './apply';
import type { ControlPlaneStatus, Origin } from './contract';
import { DaemonTarget } from './daemon-target';
import { EvpnSource, type EvpnCounters } from './evpn-source';
import { GobgpClient } from './gobgp-client';
import { loadGobgpApi, ProtoError, type GobgpApi } from './proto';

export { ProtoError };

/** Loads GoBGP's API files; throws ProtoError (one line, naming the Debian package) if they are absent. */
export function loadEvpnApi(): GobgpApi {
  return loadGobgpApi();
}

/** Where peers and FDB entries came from, for `tsvtep peers` and `fdb show`. */
export interface OriginLookup {
  peer(vni: number, address: string): Origin[];
  mac(vni: number, mac: string): Origin | undefined;
}

export class EvpnControlPlane {
  private constructor(
    readonly source: EvpnSource,
    private readonly watch: LocalMacWatch,
    private readonly target: DaemonTarget,
    readonly api: string,
  ) {}

  static async start(daemon: Daemon, config: DaemonConfig & { evpn: EvpnConfig }, api: GobgpApi, log: Logger): Promise<EvpnControlPlane> {
    const vtep = canonicalAddress(config.local ?? (await deviceAddress(config.dev as string)));
    const routerId = config.evpn.routerId ?? vtep;
    const evpnLog = log.child({ component: 'evpn' });
    const source = new EvpnSource({
      codec: api.codec,
      connect: () => new GobgpClient(api, config.evpn.api),
      api: config.evpn.api,
      originator: { routerId, asn: config.evpn.asn, vtep },
      log: evpnLog,
    });
    const target = new DaemonTarget(daemon);
    source.start(new StateApplier(target, 'evpn', evpnLog));
    const watch = new LocalMacWatch({
      networks: () => daemon.networks().map((n) => ({ vni: n.vni, bridge: n.bridge, tap: n.tap })),
      listener: source,
      log: evpnLog,
    });
    await watch.poll();
    watch.start();
    log.info({ api: config.evpn.api, vtep, routerId, asn: config.evpn.asn }, `EVPN through gobgpd at ${config.evpn.api}: VTEP ${vtep}, RD ${routerId}:n, RT ${config.evpn.asn}:VNI`);
    return new EvpnControlPlane(source, watch, target, config.evpn.api);
  }

  get origins(): OriginLookup {
    return { peer: (vni, address) => this.target.peerOriginsOf(vni, address), mac: (vni, mac) => this.target.macOriginOf(vni, mac) };
  }

  status(): ControlPlaneStatus & { counters: EvpnCounters } {
    return { ...this.source.status(), counters: { ...this.source.counters } };
  }

  /** Withdraws this host's routes (bounded time) and stops watching. */
  async stop(): Promise<void> {
    this.watch.stop();
    await this.source.stop();
  }
}
