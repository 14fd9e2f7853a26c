// What can change under a running daemon, watched from the control path:
// every couple of seconds one `ip -j link show` (netlink, so it sees the
// daemon's own network namespace) checks that each network's TAP exists and
// is a port of its bridge, and the counters tell whether UDP sends and TAP
// writes fail, or work again. Each change is logged once and counted
// (NetworkFaults); nothing here is on the data path.
//
//   TAP gone                -> onTapGone (the daemon logs it and exits 1)
//   TAP off its Linux bridge -> logged; attached again at once if the bridge
//                              is there, else as soon as a bridge of that
//                              name is back (checked every interval)
//   sends / TAP writes      -> failing: counted (the engine logs the errno
//                              once); working again: logged, and the next
//                              failure is logged again

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { EPISODE_ENDED, EPISODE_STARTED, FailureEpisodes } from '../core/failures';
import type { Network } from '../core/network';
import { attachToBridge, type BridgeKind } from './link';

const run = promisify(execFile);

export const LINK_CHECK_MS = 2_000;

export interface WatchedNetwork {
  network: Network;
  tap: string;
  bridge: string;
  kind: BridgeKind;
  tapMtu: number;
  /** This incarnation of the network (its TAP device); a network restarted under the same VNI is a new one. */
  token: object;
}

export interface LinkInfo {
  master?: string;
}

/** Every link of the namespace by name. */
export type ListLinks = () => Promise<Map<string, LinkInfo>>;

export interface LinkWatchOptions {
  log: Logger;
  /** The networks running now. */
  networks: () => WatchedNetwork[];
  /** The TAP of a running network is gone. */
  onTapGone: (watched: WatchedNetwork) => void;
  /** Failures of that kind stopped; the engine may report the next ones again. */
  onRecovered: (what: 'socket_send' | 'tap_write', vni: number) => void;
  intervalMs?: number;
  listLinks?: ListLinks;
  attach?: (tap: string, bridge: string, mtu: number) => Promise<void>;
}

interface WatchState {
  /** Off its bridge, since the check that found it so. */
  detached: boolean;
  /** The last attach error logged in this episode, so each is logged once. */
  attachError?: string;
  sends: FailureEpisodes;
  writes: FailureEpisodes;
}

export class LinkWatch {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private stopped = false;
  private listError: string | undefined;
  private readonly states = new WeakMap<object, WatchState>();
  private readonly listLinks: ListLinks;
  private readonly attach: (tap: string, bridge: string, mtu: number) => Promise<void>;

  constructor(private readonly options: LinkWatchOptions) {
    this.listLinks = options.listLinks ?? ipLinks;
    this.attach = options.attach ?? ((tap, bridge, mtu) => attachToBridge(tap, bridge, mtu, 'linux'));
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.intervalMs ?? LINK_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round of checks; a round still running makes this one a no-op. */
  async check(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      await this.checkOnce();
    } finally {
      this.busy = false;
    }
  }

  private async checkOnce(): Promise<void> {
    const before = this.options.networks();
    for (const watched of before) this.checkCounters(watched);
    let links: Map<string, LinkInfo>;
    try {
      links = await this.listLinks();
      this.listError = undefined;
    } catch (error) {
      const message = (error as Error).message.split('\n')[0];
      if (this.listError !== message) this.options.log.warn({ err: message }, `cannot list links to check TAPs and bridges: ${message}`);
      this.listError = message;
      return;
    }
    if (this.stopped) return;
    // Only networks that existed before the listing was taken: a TAP made since may be missing from it.
    const seen = new Set(before.map((w) => w.token));
    for (const watched of this.options.networks()) {
      if (this.stopped) return;
      if (!seen.has(watched.token)) continue;
      const tap = links.get(watched.tap);
      if (tap === undefined) {
        this.options.onTapGone(watched);
        continue;
      }
      if (watched.kind === 'linux') await this.checkBridge(watched, tap, links);
    }
  }

  private state(watched: WatchedNetwork): WatchState {
    let state = this.states.get(watched.token);
    if (state === undefined) {
      state = { detached: false, sends: new FailureEpisodes(), writes: new FailureEpisodes() };
      this.states.set(watched.token, state);
    }
    return state;
  }

  private checkCounters(watched: WatchedNetwork): void {
    const { log } = this.options;
    const state = this.state(watched);
    const { vni, counters } = watched.network;
    const sends = state.sends.update(counters.drops.socket_send, counters.txDatagrams);
    if (sends === EPISODE_STARTED) counters.faults.send_failing++;
    if (sends === EPISODE_ENDED) {
      log.info({ vni, dropped: state.sends.lost }, `VNI ${vni}: UDP sends work again (${state.sends.lost} datagram(s) dropped while they failed)`);
      this.options.onRecovered('socket_send', vni);
    }
    const writes = state.writes.update(counters.drops.tap_write, counters.rxFrames);
    if (writes === EPISODE_STARTED) counters.faults.tap_write_failing++;
    if (writes === EPISODE_ENDED) {
      log.info({ vni, dropped: state.writes.lost }, `VNI ${vni}: writes to ${watched.tap} work again (${state.writes.lost} frame(s) dropped while they failed)`);
      this.options.onRecovered('tap_write', vni);
    }
  }

  private async checkBridge(watched: WatchedNetwork, tap: LinkInfo, links: Map<string, LinkInfo>): Promise<void> {
    const { log } = this.options;
    const { vni } = watched.network;
    const state = this.state(watched);
    if (tap.master === watched.bridge) {
      if (state.detached) log.info({ vni, tap: watched.tap, bridge: watched.bridge }, `VNI ${vni}: ${watched.tap} is on bridge ${watched.bridge} again`);
      state.detached = false;
      return;
    }
    const bridgeThere = links.has(watched.bridge);
    if (!state.detached) {
      state.detached = true;
      state.attachError = undefined;
      watched.network.counters.faults.bridge_lost++;
      const what = bridgeThere
        ? `${watched.tap} is no longer a port of bridge ${watched.bridge}; attaching it again`
        : `bridge ${watched.bridge} is gone; ${watched.tap} is attached again as soon as a bridge of that name is back (frames from the overlay go nowhere until then)`;
      log.warn({ vni, tap: watched.tap, bridge: watched.bridge }, `VNI ${vni}: ${what}`);
    }
    if (!bridgeThere) return;
    try {
      await this.attach(watched.tap, watched.bridge, watched.tapMtu);
    } catch (error) {
      const message = (error as Error).message.split('\n')[0];
      if (state.attachError !== message) {
        log.warn({ vni, err: message }, `VNI ${vni}: cannot attach ${watched.tap} to ${watched.bridge} (${message}); trying again every ${(this.options.intervalMs ?? LINK_CHECK_MS) / 1000} s`);
      }
      state.attachError = message;
      return;
    }
    state.detached = false;
    log.info({ vni, tap: watched.tap, bridge: watched.bridge }, `VNI ${vni}: ${watched.tap} attached to bridge ${watched.bridge} again`);
  }
}

/** `ip -j link show`: every link with its master, if it has one. */
async function ipLinks(): Promise<Map<string, LinkInfo>> {
  let stdout: string;
  try {
    ({ stdout } = await run('ip', ['-j', 'link', 'show'], { timeout: 10_000, maxBuffer: 64 * 1024 * 1024 }));
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: string };
    throw new Error(err.code === 'ENOENT' ? 'the ip command is missing (install iproute2)' : (err.stderr || err.message).trim());
  }
  const links = JSON.parse(stdout) as { ifname: string; master?: string }[];
  return new Map(links.map((link) => [link.ifname, { master: link.master }]));
}
