// What a reload changes, decided without touching anything. planReload(old,
// next) compares the configuration last applied with the new one and returns
// typed actions, in the order the daemon must carry them out; describeAction
// and describeChange give the line reported for each one that succeeded.
// Pure: no I/O, no daemon state (test/unit/reload-plan.test.ts).
//
// Networks that did not change get no action and keep forwarding and what
// they learned. A change of bridge, Docker network, TAP, MTU or FDB limit
// restarts the network; peers, static entries, ageing, the flood limit and
// the learned-remote limit change in place. Settings read once at start-up are reported, not changed.

import { canonicalAddress } from './core/address';
import type { DaemonConfig, NetworkConfig, StaticEntry } from './config';

/** Settings that take a restart: a change in the file keeps the running value. */
export const RESTART_SETTINGS = ['port', 'local', 'dev', 'dontFragment', 'control', 'controlTokenFile', 'metrics', 'offload', 'sourcePorts', 'etcd', 'evpn', 'suppressArp'] as const;
export type RestartSetting = (typeof RESTART_SETTINGS)[number];

/** A change inside a running network; it keeps its TAP and its FDB. Addresses are canonical. */
export type NetworkChange =
  | { kind: 'add-peer'; address: string }
  | { kind: 'remove-peer'; address: string }
  | { kind: 'add-static'; mac: string; remote: string }
  | { kind: 'remove-static'; mac: string }
  | { kind: 'set-ageing'; seconds: number }
  | { kind: 'set-flood-limit'; rate: number; burst: number | undefined }
  /** Learned remotes (--learn-remotes) accepted at most; a lower limit removes none, it admits no more. */
  | { kind: 'set-max-remotes'; limit: number };

export type ReloadAction =
  | { kind: 'keep-setting'; setting: RestartSetting }
  | { kind: 'set-learn-remotes'; enabled: boolean }
  | { kind: 'set-log-level'; level: DaemonConfig['logLevel'] }
  | { kind: 'remove-network'; vni: number }
  | { kind: 'add-network'; config: NetworkConfig }
  | { kind: 'restart-network'; config: NetworkConfig }
  /** Changes in order; a failing one stops the rest of this network's. */
  | { kind: 'update-network'; config: NetworkConfig; changes: NetworkChange[] };

/**
 * The actions that turn old into next: restart-only settings first, then
 * daemon-wide settings, removed networks, then next's networks in its order.
 * An empty list means nothing to do.
 */
export function planReload(old: DaemonConfig, next: DaemonConfig): ReloadAction[] {
  const actions: ReloadAction[] = [];
  for (const setting of RESTART_SETTINGS) {
    if (JSON.stringify(old[setting]) !== JSON.stringify(next[setting])) actions.push({ kind: 'keep-setting', setting });
  }
  if (old.learnRemotes !== next.learnRemotes) actions.push({ kind: 'set-learn-remotes', enabled: next.learnRemotes });
  if (old.logLevel !== next.logLevel) actions.push({ kind: 'set-log-level', level: next.logLevel });

  const wanted = new Set(next.networks.map((n) => n.vni));
  for (const network of old.networks) if (!wanted.has(network.vni)) actions.push({ kind: 'remove-network', vni: network.vni });
  for (const config of next.networks) {
    const previous = old.networks.find((n) => n.vni === config.vni);
    if (!previous) actions.push({ kind: 'add-network', config });
    else if (needsRestart(previous, config)) actions.push({ kind: 'restart-network', config });
    else {
      const changes = networkChanges(previous, config);
      if (changes.length > 0) actions.push({ kind: 'update-network', config, changes });
    }
  }
  return actions;
}

function needsRestart(old: NetworkConfig, next: NetworkConfig): boolean {
  return old.bridge !== next.bridge || old.dockerNetwork !== next.dockerNetwork || old.tap !== next.tap || old.mtu !== next.mtu || old.maxAddresses !== next.maxAddresses;
}

/**
 * In this order: new peers, then static entries whose MAC is gone, then
 * removed peers (their static entries went first), then new or moved static
 * entries (their remote is a peer by now), ageing, flood limit, learned-remote limit.
 */
function networkChanges(old: NetworkConfig, next: NetworkConfig): NetworkChange[] {
  const changes: NetworkChange[] = [];
  const oldPeers = new Set(old.peers.map(canonicalAddress));
  const newPeers = new Set(next.peers.map(canonicalAddress));
  for (const address of newPeers) if (!oldPeers.has(address)) changes.push({ kind: 'add-peer', address });
  const newMacs = new Set(next.static.map((e) => e.mac.toLowerCase()));
  for (const entry of old.static) if (!newMacs.has(entry.mac.toLowerCase())) changes.push({ kind: 'remove-static', mac: entry.mac });
  for (const address of oldPeers) if (!newPeers.has(address)) changes.push({ kind: 'remove-peer', address });
  const oldStatic = new Set(old.static.map(staticKey));
  for (const entry of next.static) if (!oldStatic.has(staticKey(entry))) changes.push({ kind: 'add-static', mac: entry.mac, remote: entry.remote });
  if (old.ageingSeconds !== next.ageingSeconds) changes.push({ kind: 'set-ageing', seconds: next.ageingSeconds });
  if (old.floodRate !== next.floodRate || old.floodBurst !== next.floodBurst) {
    changes.push({ kind: 'set-flood-limit', rate: next.floodRate, burst: next.floodBurst });
  }
  if (old.maxRemotes !== next.maxRemotes) changes.push({ kind: 'set-max-remotes', limit: next.maxRemotes });
  return changes;
}

function staticKey(entry: StaticEntry): string {
  return `${entry.mac.toLowerCase()}>${canonicalAddress(entry.remote)}`;
}

/** The line reported for an action that succeeded; none for keep-setting (a warning) and update-network (its changes have lines). */
export function describeAction(action: ReloadAction): string | undefined {
  switch (action.kind) {
    case 'keep-setting':
    case 'update-network':
      return undefined;
    case 'set-learn-remotes':
      return `learnRemotes ${action.enabled}`;
    case 'set-log-level':
      return `logLevel ${action.level}`;
    case 'remove-network':
      return `VNI ${action.vni} removed`;
    case 'add-network':
      return `VNI ${action.config.vni} added`;
    case 'restart-network':
      return `VNI ${action.config.vni} restarted`;
  }
}

export function describeChange(vni: number, change: NetworkChange): string {
  switch (change.kind) {
    case 'add-peer':
      return `VNI ${vni}: peer ${change.address} added`;
    case 'remove-peer':
      return `VNI ${vni}: peer ${change.address} removed`;
    case 'add-static':
      return `VNI ${vni}: static ${change.mac} -> ${change.remote}`;
    case 'remove-static':
      return `VNI ${vni}: static ${change.mac} removed`;
    case 'set-ageing':
      return `VNI ${vni}: ageing ${change.seconds}s`;
    case 'set-flood-limit':
      return `VNI ${vni}: flood rate ${change.rate === 0 ? 'unlimited' : `${change.rate}/s, burst ${change.burst ?? change.rate}`}`;
    case 'set-max-remotes':
      return `VNI ${vni}: max remotes ${change.limit}`;
  }
}

/** The VNI an action is about, for "VNI N: change failed" lines. */
export function actionVni(action: ReloadAction): number | undefined {
  switch (action.kind) {
    case 'remove-network':
      return action.vni;
    case 'add-network':
    case 'restart-network':
    case 'update-network':
      return action.config.vni;
    default:
      return undefined;
  }
}
