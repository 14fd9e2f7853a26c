// etcd v3 as a control-plane source (see ../source.ts for the contract).
//
// One session at a time, and one of each per daemon whatever the fleet's
// size: a lease (TTL ttlSeconds, kept alive every third of it) under which
// this host's keys are put, one ranged read of the prefix (a snapshot, paged)
// and one watch of the prefix from the snapshot's revision on. Any failure
// ends the session: the state is kept as it was (forwarding goes on), the
// outage is logged once, and a new session starts after a backoff. A new
// session reads the whole prefix again, so whatever happened meanwhile (a
// member whose lease ran out, a host that joined) is caught up at once.

import { hostname } from 'node:os';
import { noop } from 'cockatiel';
import { Etcd3, type IOptions, type IWatchResponse } from 'etcd3';
import type { ControlPlaneSink, ControlPlaneSource, ControlPlaneStatus } from '../source';
import { Backoff } from '../backoff';
import { macKey, macValue, memberKey, memberValue, prefixEnd, type SkipReason } from './keys';
import { beats, EtcdMirror } from './mirror';

/** A call to etcd that takes longer than this has failed. */
const CALL_TIMEOUT_MS = 3_000;
/** Keys read per request while taking the snapshot. */
const PAGE_SIZE = 1_000;

export interface EtcdTls {
  /** undefined: the system's CAs. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface EtcdSourceOptions {
  endpoints: string[];
  prefix: string;
  ttlSeconds: number;
  /** This host's VTEP address, as the others send to it. */
  vtep: string;
  tls?: EtcdTls;
  log: SourceLog;
}

export interface SourceLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export class EtcdSource implements ControlPlaneSource {
  readonly origin = 'etcd' as const;
  private readonly client: Etcd3;
  private readonly mirror: EtcdMirror;
  private readonly prefixBytes: Buffer;
  private readonly backoff = new Backoff();
  private sink: ControlPlaneSink | undefined;
  private served: number[] = [];
  /** Our MACs per VNI: mac -> {ips, seq}. */
  private readonly localMacs = new Map<number, Map<string, { ips: readonly string[]; seq: number }>>();

  private stopped = false;
  private up = false;
  private everUp = false;
  /** Sessions started again after a failure (not after a resync for a new VNI). */
  private restarts = 0;
  private lastError: string | undefined;
  /** When the current outage began (logged once per outage). */
  private downSince: number | undefined;
  private leaseId: string | undefined;
  /** Keys this session has put, with their values. */
  private registered = new Map<string, string>();
  private syncing: Promise<void> = Promise.resolve();
  private syncQueued = false;
  /** The session running now, if any. */
  private current: Session | undefined;
  private flushQueued = false;
  /** How long the last session took to register and to read and apply the snapshot (for the log). */
  private timings: { registerMs: number; snapshotMs: number; snapshotKeys: number } | undefined;
  private snapshotKeys = 0;
  private wake: (() => void) | undefined;

  constructor(private readonly options: EtcdSourceOptions) {
    const config: IOptions = {
      hosts: options.endpoints,
      dialTimeout: CALL_TIMEOUT_MS,
      // Retries are ours (sessions with backoff), so a call fails fast and says why.
      faultHandling: { host: () => noop, global: noop },
      // gRPC's own reconnect backoff grows to minutes; after an outage we want the channel back within our backoff.
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 5_000 },
    };
    if (options.tls) config.credentials = { rootCertificate: options.tls.ca as Buffer, certChain: options.tls.cert, privateKey: options.tls.key };
    this.client = new Etcd3(config);
    this.prefixBytes = Buffer.from(options.prefix);
    this.mirror = new EtcdMirror(options.prefix, options.vtep, (reason, key) => this.firstSkip(reason, key));
  }

  start(sink: ControlPlaneSink): void {
    this.sink = sink;
    void this.run();
  }

  serve(vnis: readonly number[]): void {
    const added = vnis.some((vni) => !this.served.includes(vni));
    this.served = [...vnis];
    this.mirror.serve(vnis);
    for (const vni of this.localMacs.keys()) if (!vnis.includes(vni)) this.localMacs.delete(vni);
    this.scheduleFlush();
    // Records of a VNI not served were not kept: a new one needs a fresh snapshot.
    if (added && this.up) this.current?.end();
    else this.scheduleSync();
  }

  /** Told when a MAC we announced was taken over by another VTEP with a higher sequence number (it moved there). */
  onMacLost: (vni: number, mac: string) => void = () => undefined;

  announceMac(vni: number, mac: string, ips: readonly string[]): void {
    if (!this.served.includes(vni)) return;
    let macs = this.localMacs.get(vni);
    if (!macs) this.localMacs.set(vni, (macs = new Map()));
    let seq = macs.get(mac)?.seq ?? 0;
    // Seen here while another VTEP holds it: it moved here, and this announcement must win.
    const holder = this.mirror.holder(vni, mac);
    if (holder && !beats(seq, this.options.vtep, holder.seq, holder.vtep)) seq = holder.seq + 1;
    macs.set(mac, { ips, seq });
    this.scheduleSync();
    this.mirror.touch(vni);
    this.scheduleFlush();
  }

  withdrawMac(vni: number, mac: string): void {
    if (this.localMacs.get(vni)?.delete(mac)) this.scheduleSync();
  }

  status(): ControlPlaneStatus {
    const members = new Map<number, number>();
    for (const vni of this.served) members.set(vni, this.mirror.memberCount(vni));
    return {
      origin: 'etcd',
      up: this.up,
      members,
      watchRestarts: this.restarts,
      macMoves: 0,
      skipped: { ...this.mirror.skipped },
      lastError: this.up ? undefined : this.lastError,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.current?.end();
    this.wake?.();
    const lease = this.leaseId;
    try {
      // Our keys go at once, rather than when the TTL runs out.
      if (lease !== undefined && this.up) await this.client.leaseClient.leaseRevoke({ ID: lease }, { deadline: Date.now() + 1_000 });
    } catch {
      // etcd is away: the lease runs out by itself.
    }
    this.client.close();
  }

  // ------------------------------------------------------------ sessions

  private async run(): Promise<void> {
    while (!this.stopped) {
      let failure: Error | undefined;
      try {
        await this.session();
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      if (this.stopped) break;
      if (failure) {
        this.markDown(failure);
        await this.sleep(this.backoff.next());
        if (this.everUp) this.restarts++;
      }
    }
  }

  private async session(): Promise<void> {
    this.registered = new Map();
    const session = new Session();
    this.current = session;
    try {
      const began = Date.now();
      const grant = await this.client.leaseClient.leaseGrant({ TTL: this.options.ttlSeconds }, callOptions());
      const previousLease = this.leaseId;
      this.leaseId = grant.ID;
      await this.syncOwnKeys();
      if (previousLease !== undefined && previousLease !== grant.ID) {
        // Our keys moved to the new lease; the old one would only run out.
        this.client.leaseClient.leaseRevoke({ ID: previousLease }, callOptions()).catch(() => undefined);
      }
      const registeredAt = Date.now();
      const revision = await this.loadSnapshot();
      this.timings = { registerMs: registeredAt - began, snapshotMs: Date.now() - registeredAt, snapshotKeys: this.snapshotKeys };
      this.keepAlive(session, grant.ID);
      this.watchFrom(session, revision + 1);
      if (!session.ended) this.markUp();
      await session.done;
    } finally {
      session.end();
      this.current = undefined;
    }
  }

  /** Reads the whole prefix, page by page at one revision, into the mirror. Returns that revision. */
  private async loadSnapshot(): Promise<number> {
    const end = prefixEnd(this.prefixBytes);
    let from = this.prefixBytes;
    let revision: string | undefined;
    this.mirror.clear();
    this.snapshotKeys = 0;
    for (;;) {
      const page = await this.client.kv.range({ key: from, range_end: end, limit: PAGE_SIZE, revision, sort_order: 'None' }, callOptions());
      revision ??= page.header.revision;
      for (const kv of page.kvs) this.mirror.put(kv.key.toString('utf8'), kv.value);
      this.snapshotKeys += page.kvs.length;
      if (!page.more || page.kvs.length === 0) break;
      // The next key after the last one read.
      from = Buffer.concat([page.kvs[page.kvs.length - 1].key, Buffer.from([0])]);
    }
    this.flush();
    return Number(revision);
  }

  private watchFrom(session: Session, startRevision: number): void {
    this.client.watchClient.watch(callOptions(false)).then(
      (stream) => {
        if (!session.onEnd(() => stream.cancel())) return;
        stream.on('data', (response: IWatchResponse) => {
          if (response.canceled) {
            const compacted = Number(response.compact_revision ?? 0) > 0 ? ` (compacted at revision ${response.compact_revision})` : '';
            return session.end(new Error(`watch canceled${compacted}: ${response.cancel_reason || 'no reason given'}`));
          }
          for (const event of response.events ?? []) {
            const key = event.kv.key.toString('utf8');
            if (event.type === 'Delete') this.mirror.delete(key);
            else this.mirror.put(key, event.kv.value);
          }
          this.scheduleFlush();
        });
        stream.on('error', (error: Error) => session.end(new Error(`watch: ${error.message}`)));
        stream.on('end', () => session.end(new Error('watch stream ended')));
        stream.write({ create_request: { key: this.prefixBytes, range_end: prefixEnd(this.prefixBytes), start_revision: String(startRevision) } });
      },
      (error: Error) => session.end(new Error(`watch: ${error.message}`)),
    );
  }

  /** Keeps the lease alive every third of the TTL; no answer for two thirds of it ends the session. */
  private keepAlive(session: Session, leaseId: string): void {
    const periodMs = (this.options.ttlSeconds * 1000) / 3;
    this.client.leaseClient.leaseKeepAlive(callOptions(false)).then(
      (stream) => {
        let answeredAt = Date.now();
        const timer = setInterval(() => {
          const silentMs = Date.now() - answeredAt;
          if (silentMs > 2 * periodMs) return session.end(new Error(`no lease keep-alive answer for ${Math.round(silentMs / 1000)} s`));
          stream.write({ ID: leaseId });
        }, periodMs);
        timer.unref();
        if (
          !session.onEnd(() => {
            clearInterval(timer);
            stream.cancel();
          })
        )
          return;
        stream.on('data', (response: { TTL: string }) => {
          if (response.TTL === '0') return session.end(new Error('our lease expired'));
          answeredAt = Date.now();
        });
        stream.on('error', (error: Error) => session.end(new Error(`lease keep-alive: ${error.message}`)));
        stream.on('end', () => session.end(new Error('lease keep-alive stream ended')));
        stream.write({ ID: leaseId });
      },
      (error: Error) => session.end(new Error(`lease keep-alive: ${error.message}`)),
    );
  }

  // ------------------------------------------------------------ our own keys

  private desiredKeys(): Map<string, string> {
    const { prefix, vtep } = this.options;
    const keys = new Map<string, string>();
    for (const vni of this.served) {
      keys.set(memberKey(prefix, vni, vtep), memberValue(vtep, hostname()));
      for (const [mac, { ips, seq }] of this.localMacs.get(vni) ?? []) keys.set(macKey(prefix, vni, mac, vtep), macValue(ips, seq));
    }
    return keys;
  }

  /** Puts what is missing or changed and deletes what is no longer ours to announce, under the lease. */
  private async syncOwnKeys(): Promise<void> {
    const lease = this.leaseId;
    if (lease === undefined) return;
    const desired = this.desiredKeys();
    const writes: Promise<unknown>[] = [];
    for (const [key, value] of desired) {
      if (this.registered.get(key) === value) continue;
      writes.push(this.client.kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease }, callOptions()));
    }
    for (const key of this.registered.keys()) {
      if (!desired.has(key)) writes.push(this.client.kv.deleteRange({ key: Buffer.from(key) }, callOptions()));
    }
    await Promise.all(writes);
    this.registered = desired;
  }

  /** Syncs our keys after a change, one sync at a time; a failure ends the session. */
  private scheduleSync(): void {
    if (!this.up || this.syncQueued) return;
    this.syncQueued = true;
    this.syncing = this.syncing.then(async () => {
      this.syncQueued = false;
      if (!this.up) return;
      try {
        await this.syncOwnKeys();
      } catch (error) {
        this.current?.end(new Error(`registering: ${(error as Error).message}`));
      }
    });
  }

  // ------------------------------------------------------------ state to the sink

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => this.flush());
  }

  /** Hands every VNI that changed to the sink, once per burst of events. */
  private flush(): void {
    this.flushQueued = false;
    if (!this.sink) return;
    let lost = false;
    for (const vni of this.mirror.takeDirty()) {
      const state = this.mirror.state(vni);
      const local = this.localMacs.get(vni);
      if (!local || local.size === 0) {
        this.sink.replace(vni, state);
        continue;
      }
      // Our own MACs are not remote entries; unless another VTEP now holds one with a higher sequence number.
      const macs = new Map(state.macs);
      for (const [mac, mine] of local) {
        const remote = macs.get(mac);
        if (remote === undefined) continue;
        if (beats(mine.seq, this.options.vtep, remote.seq, remote.vtep)) {
          macs.delete(mac);
        } else {
          local.delete(mac);
          lost = true;
          this.onMacLost(vni, mac);
        }
      }
      this.sink.replace(vni, { members: state.members, macs });
    }
    if (lost) this.scheduleSync();
  }

  // ------------------------------------------------------------ up and down

  private markUp(): void {
    const wasDown = this.downSince;
    this.up = true;
    this.lastError = undefined;
    this.downSince = undefined;
    this.backoff.reset();
    this.scheduleSync(); // changes made while the session was being set up
    const members = this.served.map((vni) => `VNI ${vni}: ${this.mirror.memberCount(vni)}`).join(', ');
    const where = this.options.endpoints.join(',');
    if (!this.everUp) this.options.log.info({ endpoints: this.options.endpoints, vtep: this.options.vtep, ...this.timings }, `etcd ${where}: registered as ${this.options.vtep}; members ${members || 'none'}`);
    else if (wasDown !== undefined) this.options.log.info({ endpoints: this.options.endpoints, downSeconds: Math.round((Date.now() - wasDown) / 1000) }, `etcd ${where}: back after ${Math.round((Date.now() - wasDown) / 1000)} s, caught up; members ${members || 'none'}`);
    this.everUp = true;
  }

  private markDown(error: Error): void {
    this.up = false;
    this.lastError = describeError(error);
    if (this.downSince !== undefined) {
      this.options.log.debug({ err: this.lastError }, `etcd still unavailable: ${this.lastError}`);
      return;
    }
    this.downSince = Date.now();
    const where = this.options.endpoints.join(',');
    this.options.log.warn(
      { endpoints: this.options.endpoints, err: this.lastError },
      this.everUp
        ? `etcd ${where} unavailable (${this.lastError}): forwarding with the last known members; retrying (logged once)`
        : `etcd ${where} unavailable (${this.lastError}): forwarding to static peers only; retrying (logged once)`,
    );
  }

  private firstSkip(reason: SkipReason, key: string): void {
    this.options.log.warn({ reason, key: key.slice(0, 200) }, `etcd: skipping key ${JSON.stringify(key.slice(0, 100))} (${reason.replace(/_/g, ' ')}); further ones are counted, not logged`);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/** One session's end: resolved by a stop or resync, rejected by a failure; runs its cleanups once. */
class Session {
  ended = false;
  readonly done: Promise<void>;
  private settle: (error?: Error) => void = () => undefined;
  private readonly cleanups: (() => void)[] = [];

  constructor() {
    this.done = new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error ? reject(error) : resolve());
    });
    // Ended before anyone awaits it (while setting up): not an unhandled rejection.
    this.done.catch(() => undefined);
  }

  /** Registers a cleanup; false (and cleans up now) if the session already ended. */
  onEnd(cleanup: () => void): boolean {
    if (this.ended) {
      cleanup();
      return false;
    }
    this.cleanups.push(cleanup);
    return true;
  }

  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.settle(error);
  }
}

function callOptions(withDeadline = true): { deadline?: number } {
  return withDeadline ? { deadline: Date.now() + CALL_TIMEOUT_MS } : {};
}

/** One line of what went wrong, with what gRPC says of TLS refusals made plain. */
export function describeError(error: Error): string {
  const message = error.message.split('\n')[0];
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown)/i.test(message)) {
    return 'etcd refused our TLS client certificate: give --etcd-cert and --etcd-key signed by the CA etcd trusts';
  }
  if (/certificate verify failed|self.signed|unable to get (local )?issuer/i.test(message)) {
    return "etcd's TLS certificate is not signed by --etcd-ca (or not for this address)";
  }
  if (/SSL|TLS|handshake|wrong version number/i.test(message)) return `TLS failed: ${message.replace(/^\d+ \w+: /, '')}`;
  return message.replace(/^14 UNAVAILABLE: /, '');
}
