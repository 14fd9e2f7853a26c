// A control-plane source on /metrics and /healthz: whether it is up, the
// members per VNI, sessions restarted, routes skipped, MAC moves. Read at
// scrape time from the source's status, like every other collector.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { ControlPlaneStatus } from './evpn/contract';

/** What a running control plane shows (EvpnControlPlane, or etcd's). */
export interface ControlPlaneReporter {
  status(): ControlPlaneStatus & { counters?: { readonly announced?: number } };
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

/** tsvtep_<origin>_up, _members{vni}, _session_restarts_total, _routes_skipped_total{reason}, _mac_moves_total. */
export function registerControlPlaneMetrics(registry: Registry, reporter: ControlPlaneReporter): void {
  const origin = reporter.status().origin;
  const gauge = (name: string, help: string, labelNames: string[], read: (set: (labels: Record<string, string>, value: number) => void) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect(this: Gauge) {
        this.reset();
        read((labels, value) => this.set(labels, value));
      },
    });
  const counter = (name: string, help: string, labelNames: string[], read: (inc: (labels: Record<string, string>, value: number) => void) => void) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect(this: Counter) {
        this.reset();
        read((labels, value) => this.inc(labels, value));
      },
    });
  gauge(`tsvtep_${origin}_up`, `1 while the ${origin} control plane is connected and watching; 0 while forwarding goes on with the last state.`, [], (set) =>
    set({}, reporter.status().up ? 1 : 0),
  );
  gauge(`tsvtep_${origin}_members`, `Other VTEPs of each served VNI, as ${origin} last told.`, ['vni'], (set) => {
    for (const [vni, members] of reporter.status().members) set({ vni: String(vni) }, members);
  });
  counter(`tsvtep_${origin}_session_restarts_total`, `Sessions with the ${origin} backend started again after a failure.`, [], (inc) =>
    inc({}, reporter.status().watchRestarts),
  );
  counter(`tsvtep_${origin}_routes_skipped_total`, 'Routes or keys skipped as malformed or over a limit, by reason.', ['reason'], (inc) => {
    for (const [reason, count] of Object.entries(reporter.status().skipped)) inc({ reason }, count);
  });
  counter(`tsvtep_${origin}_mac_moves_total`, 'Remote MACs that moved to another VTEP, settled by MAC mobility sequence number.', [], (inc) =>
    inc({}, reporter.status().macMoves),
  );
  if (reporter.status().counters?.announced !== undefined) {
    gauge(`tsvtep_${origin}_routes_announced`, 'Routes this host announces now (one type-3 per VNI, type-2 per local MAC and IP).', [], (set) =>
      set({}, reporter.status().counters?.announced ?? 0),
    );
  }
}
