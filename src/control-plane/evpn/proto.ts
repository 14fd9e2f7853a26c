// GoBGP's API definition, loaded at run time from the .proto files Debian
// ships in golang-github-osrg-gobgp-dev: the gRPC service (through
// @grpc/proto-loader) and the messages packed inside `Any` fields (through
// protobufjs, which proto-loader is built on). Nothing is generated or
// vendored, so the API follows the installed gobgpd.

import { existsSync } from 'node:fs';
import path from 'node:path';
import type * as GrpcJs from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import type * as Protobuf from 'protobufjs';
import type { AnyCodec, AnyMessage } from './routes';

/** Where Debian's golang-github-osrg-gobgp-dev puts the API's .proto files. */
export const DEFAULT_PROTO_DIR = '/usr/share/gocode/src/github.com/osrg/gobgp/api';
const PROTO_FILES = ['gobgp.proto', 'attribute.proto'];
const TYPE_URL_PREFIX = 'type.googleapis.com/apipb.';

/** The API files are missing or unreadable; the message names the package. */
export class ProtoError extends Error {}

export interface GobgpApi {
  /** grpc-js client constructor of apipb.GobgpApi. */
  readonly Client: GrpcJs.ServiceClientConstructor;
  readonly codec: AnyCodec;
  readonly grpc: typeof GrpcJs;
}

/** Loads the API from dir (GOBGP_PROTO_DIR, else Debian's path); throws ProtoError naming the package if absent. */
export function loadGobgpApi(dir: string = process.env.GOBGP_PROTO_DIR ?? DEFAULT_PROTO_DIR): GobgpApi {
  const missing = PROTO_FILES.filter((file) => !existsSync(path.join(dir, file)));
  if (missing.length > 0) {
    throw new ProtoError(
      `GoBGP's API files (${missing.join(', ')}) are not in ${dir} (apt-get install golang-github-osrg-gobgp-dev, or set GOBGP_PROTO_DIR)`,
    );
  }
  // Loaded here, not at the top: a daemon without --evpn does not pay for them.
  const grpc = require('@grpc/grpc-js') as typeof GrpcJs;
  const loader = require('@grpc/proto-loader') as typeof ProtoLoader;
  const protobuf = require('protobufjs') as typeof Protobuf;
  try {
    const definition = loader.loadSync(PROTO_FILES, { includeDirs: [dir], longs: Number, enums: String, defaults: true, oneofs: true });
    const service = grpc.loadPackageDefinition(definition) as unknown as { apipb: { GobgpApi: GrpcJs.ServiceClientConstructor } };
    const root = new protobuf.Root();
    // google/protobuf/* come with protobufjs; GoBGP's own files import each other by bare name.
    root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : path.join(dir, path.basename(target)));
    root.loadSync(PROTO_FILES);
    return { Client: service.apipb.GobgpApi, codec: protobufCodec(root), grpc };
  } catch (error) {
    throw new ProtoError(`cannot load GoBGP's API files from ${dir}: ${(error as Error).message} (golang-github-osrg-gobgp-dev must match gobgpd)`);
  }
}

/** Any packing over the loaded types; field names are camelCase as proto-loader's. */
function protobufCodec(root: Protobuf.Root): AnyCodec {
  const types = new Map<string, Protobuf.Type>();
  const type = (name: string): Protobuf.Type | undefined => {
    let found = types.get(name);
    if (!found) {
      try {
        found = root.lookupType(`apipb.${name}`);
      } catch {
        return undefined;
      }
      types.set(name, found);
    }
    return found;
  };
  return {
    pack(typeName: string, message: Record<string, unknown>): AnyMessage {
      const messageType = type(typeName);
      if (!messageType) throw new Error(`apipb.${typeName} is not in GoBGP's API files`);
      return { typeUrl: TYPE_URL_PREFIX + typeName, value: Buffer.from(messageType.encode(messageType.fromObject(toProtobufAny(message) as Record<string, unknown>)).finish()) };
    },
    unpack(any: AnyMessage) {
      if (!any.typeUrl.startsWith(TYPE_URL_PREFIX)) return undefined;
      const name = any.typeUrl.slice(TYPE_URL_PREFIX.length);
      const messageType = type(name);
      if (!messageType) return undefined;
      const decoded = messageType.decode(any.value);
      const message = fromProtobufAny(messageType.toObject(decoded, { longs: Number, enums: String, defaults: true, bytes: Buffer })) as Record<string, unknown>;
      return { type: name, message };
    },
  };
}

// protobufjs's built-in google.protobuf.Any (which proto-loader uses too) keeps
// the field name type_url, where every other field is camelCase: callers say
// typeUrl, and requests and responses are translated here.
export function toProtobufAny(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toProtobufAny);
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value) || value instanceof Uint8Array) return value;
  const object = value as Record<string, unknown>;
  if (typeof object.typeUrl === 'string' && 'value' in object) return { type_url: object.typeUrl, value: object.value };
  return Object.fromEntries(Object.entries(object).map(([key, field]) => [key, toProtobufAny(field)]));
}

export function fromProtobufAny(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromProtobufAny);
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value) || value instanceof Uint8Array) return value;
  const object = value as Record<string, unknown>;
  if (typeof object.type_url === 'string' && 'value' in object) return { typeUrl: object.type_url, value: object.value };
  return Object.fromEntries(Object.entries(object).map(([key, field]) => [key, fromProtobufAny(field)]));
}
