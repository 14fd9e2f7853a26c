// Joins a started control-plane source (etcd or EVPN) to the daemon, the same
// way for both: the ControlPlaneApplier feeds the daemon's peers and remote
// MACs from it, the LocalAnnouncer puts a TAP observer on each network (local
// MACs and IPs for the source, ARP/ND answered with --suppress-arp), and the
// daemon tells both which networks it serves.

import type { Logger } from 'pino';
import { systemClock } from '../core/clock';
import type { Daemon } from '../daemon';
import { ControlPlaneApplier, type DataPlaneTarget } from './apply';
import { LocalAnnouncer } from './local-announcer';
import type { ControlPlaneSource, RunningControlPlane } from './source';

export interface JoinOptions {
  /** Announce the MACs and IPs behind this host's TAPs (--etcd-fdb; always with EVPN). */
  fdb: boolean;
  /** Answer ARP/ND from the source's bindings (--suppress-arp). */
  suppressArp: boolean;
}

export function joinControlPlane(daemon: Daemon, source: ControlPlaneSource, options: JoinOptions, log: Logger): RunningControlPlane {
  const announcer = new LocalAnnouncer(source, { fdb: options.fdb, suppressArp: options.suppressArp, clock: systemClock });
  const target: DataPlaneTarget = {
    addPeer: (vni, address, origin) => daemon.addPeer(vni, address, origin),
    removePeer: (vni, address, origin) => daemon.removePeer(vni, address, origin),
    hasNetwork: (vni) => daemon.hasNetwork(vni),
    putRemoteMac: (vni, mac, vtep, origin) => daemon.putRemoteMac(vni, mac, vtep, origin),
    removeRemoteMac: (vni, mac, origin) => daemon.removeRemoteMac(vni, mac, origin),
    setNeighbours: (vni, bindings) => announcer.setNeighbours(vni, bindings),
  };
  const applier = new ControlPlaneApplier(target, source.origin, log);
  const running: RunningControlPlane = {
    status: () => ({ ...source.status(), macMoves: applier.macMoves }),
    stop: async () => {
      announcer.stop();
      await source.stop();
    },
  };
  daemon.controlPlane = running;
  source.onMacLost = (vni, mac) => announcer.macLost(vni, mac);
  let served = new Set<number>();
  daemon.watchNetworks((networks) => {
    const now = new Set(networks.map((n) => n.vni));
    // A network removed (or restarted) starts afresh: what was applied there went with it.
    for (const vni of served) if (!now.has(vni)) applier.forget(vni);
    served = now;
    announcer.networksChanged(networks);
    source.serve([...now]);
  });
  source.start(applier);
  return running;
}
