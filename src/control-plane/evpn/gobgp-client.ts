// The few calls of gobgpd's gRPC API (apipb.GobgpApi) that tsvtep makes, as
// promises and callbacks on plain path objects: add and delete a path in the
// global RIB, list the EVPN paths, and watch best-path changes. One client is
// one connection attempt; the EVPN source (source.ts) makes a new one after a
// failure. Nothing here decides anything.

import type * as GrpcJs from '@grpc/grpc-js';
import { fromProtobufAny, toProtobufAny, type GobgpApi } from './proto';
import { EVPN_FAMILY, type ApiPath } from './routes';

/** Unary calls give up after this; a gobgpd that does not answer is treated as down. */
const CALL_DEADLINE_MS = 5_000;

/** What the EVPN source needs of gobgpd (a fake in unit tests). */
export interface EvpnRib {
  addPath(path: ApiPath): Promise<void>;
  deletePath(path: ApiPath): Promise<void>;
  /** Every best EVPN path in the global RIB, this host's own included. */
  listPaths(): Promise<ApiPath[]>;
  /** Best-path changes (withdrawals have isWithdraw) until onEnd, which is called once. */
  watch(onPaths: (paths: ApiPath[]) => void, onEnd: (error: Error) => void): void;
  close(): void;
}

type Callback = (error: GrpcJs.ServiceError | null, response: unknown) => void;
type UnaryCall = (request: unknown, options: GrpcJs.CallOptions, callback: Callback) => void;
type StreamCall = (request: unknown, options?: GrpcJs.CallOptions) => GrpcJs.ClientReadableStream<unknown>;

interface ListPathResponse {
  destination?: { prefix?: string; paths?: (ApiPath & { best?: boolean })[] } | null;
}

interface WatchEventResponse {
  table?: { paths?: ApiPath[] } | null;
}

export class GobgpClient implements EvpnRib {
  private readonly client: GrpcJs.Client;
  private readonly streams: GrpcJs.ClientReadableStream<unknown>[] = [];

  constructor(
    api: GobgpApi,
    /** gobgpd's API address, host:port (gobgpd's default is 127.0.0.1:50051). */
    readonly address: string,
  ) {
    this.client = new api.Client(address, api.grpc.credentials.createInsecure(), {
      // Reconnecting is the source's job, with its own backoff and logging.
      'grpc.enable_retries': 0,
      'grpc.initial_reconnect_backoff_ms': 500,
      'grpc.max_reconnect_backoff_ms': 5_000,
    });
  }

  addPath(path: ApiPath): Promise<void> {
    return this.unary('AddPath', { tableType: 'GLOBAL', path }).then(() => undefined);
  }

  deletePath(path: ApiPath): Promise<void> {
    return this.unary('DeletePath', { tableType: 'GLOBAL', family: EVPN_FAMILY, path }).then(() => undefined);
  }

  listPaths(): Promise<ApiPath[]> {
    return new Promise((resolve, reject) => {
      const paths: ApiPath[] = [];
      const stream = this.stream('ListPath', { tableType: 'GLOBAL', family: EVPN_FAMILY }, { deadline: Date.now() + CALL_DEADLINE_MS });
      stream.on('data', (raw: unknown) => {
        const response = fromProtobufAny(raw) as ListPathResponse;
        for (const path of response.destination?.paths ?? []) if (path.best !== false) paths.push(path);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(paths));
    });
  }

  watch(onPaths: (paths: ApiPath[]) => void, onEnd: (error: Error) => void): void {
    const stream = this.stream('WatchEvent', { table: { filters: [{ type: 'BEST', init: false }] } });
    let ended = false;
    const end = (error: Error) => {
      if (ended) return;
      ended = true;
      onEnd(error);
    };
    stream.on('data', (raw: unknown) => {
      const response = fromProtobufAny(raw) as WatchEventResponse;
      const paths = response.table?.paths ?? [];
      if (paths.length > 0) onPaths(paths);
    });
    stream.on('error', (error: Error) => end(error));
    stream.on('end', () => end(new Error('gobgpd ended the watch')));
  }

  close(): void {
    for (const stream of this.streams) stream.cancel();
    this.client.close();
  }

  private unary(method: string, request: unknown): Promise<unknown> {
    const call = (this.client as unknown as Record<string, UnaryCall>)[method].bind(this.client);
    return new Promise((resolve, reject) => {
      call(toProtobufAny(request), { deadline: Date.now() + CALL_DEADLINE_MS }, (error, response) => (error ? reject(error) : resolve(response)));
    });
  }

  private stream(method: string, request: unknown, options: GrpcJs.CallOptions = {}): GrpcJs.ClientReadableStream<unknown> {
    const call = (this.client as unknown as Record<string, StreamCall>)[method].bind(this.client);
    const stream = call(request, options);
    this.streams.push(stream);
    const forget = () => {
      const at = this.streams.indexOf(stream);
      if (at >= 0) this.streams.splice(at, 1);
    };
    stream.on('end', forget);
    stream.on('error', forget);
    return stream;
  }
}

/** A short reason for the log and /healthz: 'UNAVAILABLE: No connection established', not a stack. */
export function describeGrpcError(error: unknown): string {
  const e = error as { code?: number; details?: string; message?: string };
  if (typeof e.details === 'string' && e.details !== '') return e.details.split('\n')[0];
  return String(e.message ?? error).split('\n')[0];
}
