// A control-plane source (etcd or EVPN) on /metrics and /healthz, in one shape
// for both: tsvtep_<origin>_up, _members{vni}, _session_restarts_total,
// _mac_moves_total, _skipped_total{reason}, and _announced where the source
// counts what it announces. Read at scrape time from the source's status,
// like every other collector.

import type { Registry } from 'prom-client';
import { counterFrom, gaugeFrom, type Emit } from '../scrape-time-metrics';
import type { ControlPlaneStatus } from './source';

/** What a running control plane shows (RunningControlPlane). */
export interface ControlPlaneReporter {
  status(): ControlPlaneStatus;
}

/** /healthz's view of it: the data plane forwards either way, so it does not make the daemon "down". */
export interface ControlPlaneHealth {
  origin: string;
  up: boolean;
  lastError?: string;
  members: Record<string, number>;
}

export function controlPlaneHealth(reporter: ControlPlaneReporter): ControlPlaneHealth {
  const status = reporter.status();
  return {
    origin: status.origin,
    up: status.up,
    ...(status.lastError === undefined ? {} : { lastError: status.lastError }),
    members: Object.fromEntries([...status.members].map(([vni, n]) => [String(vni), n])),
  };
}


export function registerControlPlaneMetrics(registry: Registry, reporter: ControlPlaneReporter): void {
  const origin = reporter.status().origin;
  const gauge = (name: string, help: string, labelNames: string[], read: (set: Emit) => void) => gaugeFrom(registry, name, help, labelNames, read);
  const counter = (name: string, help: string, labelNames: string[], read: (inc: Emit) => void) => counterFrom(registry, name, help, labelNames, read);
  gauge(`tsvtep_${origin}_up`, `1 while connected to ${origin}, announcing and watching; 0 while forwarding goes on with the last known state.`, [], (set) =>
    set({}, reporter.status().up ? 1 : 0),
  );
  gauge(`tsvtep_${origin}_members`, `Other VTEPs of each served VNI, as ${origin} last told.`, ['vni'], (set) => {
    for (const [vni, members] of reporter.status().members) set({ vni: String(vni) }, members);
  });
  counter(`tsvtep_${origin}_session_restarts_total`, `Sessions with ${origin} (etcd: lease and watch; EVPN: gobgpd's watch) started again after a failure.`, [], (inc) =>
    inc({}, reporter.status().watchRestarts),
  );
  counter(`tsvtep_${origin}_mac_moves_total`, `Remote MACs that moved to another VTEP through ${origin}, settled by MAC mobility sequence number.`, [], (inc) =>
    inc({}, reporter.status().macMoves),
  );
  counter(`tsvtep_${origin}_skipped_total`, `etcd keys or EVPN routes from ${origin} skipped as malformed or over a limit, by reason.`, ['reason'], (inc) => {
    for (const [reason, count] of Object.entries(reporter.status().skipped)) inc({ reason }, count);
  });
  if (reporter.status().announced !== undefined) {
    gauge(`tsvtep_${origin}_announced`, `What this host announces to ${origin} now (EVPN: one type-3 route per VNI, type-2 per local MAC and IP).`, [], (set) =>
      set({}, reporter.status().announced ?? 0),
    );
  }
}
