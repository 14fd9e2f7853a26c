// Hostile VXLAN input for the hardening tests: a deterministic generator of
// random and mutated datagrams, and a sender that fires them at a VTEP from a
// namespace, as fast as the socket takes them.
//
//   node FUZZER.js --to 10.0.1.41 --count 200000 [--from ADDR]
//        [--port 4789] [--vni 100] [--seed 1] [--kinds valid,runt,...] [--huge-every 1000]
//
// prints one JSON line: {"sent": N, "kinds": {kind: count, ...}, "seconds": S}.
// It is test code: buildFuzzer() (helpers/hostile.ts) compiles it to a script
// node runs inside a test namespace; nothing of it ships in dist/.
//
// The kinds cover what a VTEP must survive: empty and truncated datagrams, a
// header and nothing else, every flag but I, every reserved bit set (which
// RFC 7348 says to ignore), VNIs nobody serves, inner frames that are runts,
// have a multicast or all-zeros source, or carry an IP packet longer than the
// frame, 65 507-byte datagrams (the largest UDP over IPv4), random bytes, and
// good frames with random source MACs and random bits flipped.

import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';

export const FUZZ_KINDS = [
  'empty',
  'short',
  'header_only',
  'runt',
  'no_i_flag',
  'reserved_bits',
  'wrong_vni',
  'multicast_source',
  'zero_source',
  'truncated_ip',
  'valid',
  'mutated',
  'random',
  'big',
] as const;

/** A kind sent once every `hugeEvery` datagrams rather than drawn at random. */
export const HUGE = 'huge';
/** The largest UDP payload over IPv4: 65 535 - 20 - 8. */
export const HUGE_LENGTH = 65_507;

export type FuzzKind = (typeof FUZZ_KINDS)[number] | typeof HUGE;

/** mulberry32: small, fast and deterministic. */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  bytes(buf: Buffer, offset: number, length: number): void {
    for (let i = 0; i < length; i++) buf[offset + i] = this.int(0, 255);
  }
}

export interface FuzzOptions {
  vni: number;
  seed: number;
  /** Draw only from these kinds (default: all). */
  kinds?: readonly FuzzKind[];
  /** One datagram of HUGE_LENGTH bytes every this many (0: never). */
  hugeEvery?: number;
}

const ETHERTYPES = [0x0800, 0x86dd, 0x0806, 0x88b5];

export class FuzzGenerator {
  private readonly prng: Prng;
  private readonly kinds: readonly FuzzKind[];
  private count = 0;

  constructor(private readonly options: FuzzOptions) {
    this.prng = new Prng(options.seed);
    this.kinds = options.kinds ?? FUZZ_KINDS;
  }

  /** The next datagram and its kind. */
  next(): { kind: FuzzKind; datagram: Buffer } {
    this.count++;
    const hugeEvery = this.options.hugeEvery ?? 0;
    const kind: FuzzKind =
      hugeEvery > 0 && this.count % hugeEvery === 0 ? HUGE : this.kinds[this.prng.int(0, this.kinds.length - 1)];
    return { kind, datagram: this.make(kind) };
  }

  private make(kind: FuzzKind): Buffer {
    const p = this.prng;
    const vni = this.options.vni;
    switch (kind) {
      case 'empty':
        return Buffer.alloc(0);
      case 'short': {
        const b = Buffer.alloc(p.int(1, 7));
        p.bytes(b, 0, b.length);
        b[0] |= 0x08; // with the I flag, so only the length is wrong
        return b;
      }
      case 'header_only':
        return header(vni);
      case 'runt': {
        const b = Buffer.concat([header(vni), Buffer.alloc(p.int(1, 13))]);
        p.bytes(b, 8, b.length - 8);
        return b;
      }
      case 'no_i_flag': {
        const b = Buffer.concat([header(vni), this.frame()]);
        b[0] = p.int(0, 255) & ~0x08;
        return b;
      }
      case 'reserved_bits': {
        const b = Buffer.concat([header(vni), this.frame()]);
        b[0] = 0xff;
        b[1] = b[2] = b[3] = b[7] = 0xff;
        return b;
      }
      case 'wrong_vni': {
        let other = p.int(0, 0xffffff);
        if (other === vni) other = (vni + 1) & 0xffffff;
        return Buffer.concat([header(other), this.frame()]);
      }
      case 'multicast_source': {
        const frame = this.frame();
        frame[6] |= 0x01;
        return Buffer.concat([header(vni), frame]);
      }
      case 'zero_source': {
        const frame = this.frame();
        frame.fill(0, 6, 12);
        return Buffer.concat([header(vni), frame]);
      }
      case 'truncated_ip': {
        const frame = this.frame(0x0800, p.int(34, 200));
        frame[14] = 0x45;
        frame.writeUInt16BE(frame.length - 14 + p.int(1, 1000), 16); // longer than what is there
        return Buffer.concat([header(vni), frame]);
      }
      case 'valid':
        return Buffer.concat([header(vni), this.frame()]);
      case 'mutated': {
        const b = Buffer.concat([header(vni), this.frame()]);
        const flips = p.int(1, 8);
        for (let i = 0; i < flips; i++) {
          // Mostly the first 40 bytes (headers), sometimes anywhere.
          const at = p.next() < 0.8 ? p.int(0, Math.min(39, b.length - 1)) : p.int(0, b.length - 1);
          b[at] ^= 1 << p.int(0, 7);
        }
        return b;
      }
      case 'random': {
        const b = Buffer.alloc(p.int(0, 1600));
        p.bytes(b, 0, b.length);
        return b;
      }
      case 'big': {
        // Around the daemon's largest slot (9 KiB frames), either side of it.
        const frame = this.frame(0x88b5, p.int(1500, 9300));
        return Buffer.concat([header(vni), frame]);
      }
      case HUGE: {
        const b = Buffer.alloc(HUGE_LENGTH);
        header(vni).copy(b, 0);
        const frame = this.frame(0x88b5, 60);
        frame.copy(b, 8);
        return b;
      }
    }
  }

  /** A plausible Ethernet frame: random unicast source, broadcast or random unicast destination. */
  private frame(etherType?: number, length?: number): Buffer {
    const p = this.prng;
    const type = etherType ?? ETHERTYPES[p.int(0, ETHERTYPES.length - 1)];
    const frame = Buffer.alloc(length ?? p.int(60, 1514));
    if (p.next() < 0.5) frame.fill(0xff, 0, 6);
    else {
      p.bytes(frame, 0, 6);
      frame[0] = (frame[0] & 0xfe) | 0x02;
    }
    p.bytes(frame, 6, 6);
    frame[6] = (frame[6] & 0xfe) | 0x02; // unicast, locally administered
    if (frame[7] === 0) frame[7] = 1;
    frame.writeUInt16BE(type, 12);
    p.bytes(frame, 14, frame.length - 14);
    if (type === 0x0800 && frame.length >= 34) {
      frame[14] = 0x45;
      frame.writeUInt16BE(frame.length - 14, 16);
    } else if (type === 0x86dd && frame.length >= 54) {
      frame[14] = 0x60;
      frame.writeUInt16BE(frame.length - 54, 18);
    }
    return frame;
  }
}

function header(vni: number): Buffer {
  return Buffer.from([0x08, 0, 0, 0, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff, 0]);
}

export interface FuzzResult {
  sent: number;
  kinds: Record<string, number>;
  seconds: number;
}

/** Sends count datagrams from the generator to to:port, at most `window` in flight; resolves with what was sent. */
export async function fuzz(options: FuzzOptions & { to: string; from?: string; port: number; count: number; window?: number }): Promise<FuzzResult> {
  const generator = new FuzzGenerator(options);
  const socket = createSocket({ type: options.to.includes(':') ? 'udp6' : 'udp4', sendBufferSize: 4 * 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, options.from, () => resolve());
  });
  const kinds: Record<string, number> = {};
  const started = process.hrtime.bigint();
  const window = options.window ?? 256;
  let sent = 0;
  try {
    while (sent < options.count) {
      const batch = Math.min(window, options.count - sent);
      const pending: Promise<void>[] = [];
      for (let i = 0; i < batch; i++) {
        const { kind, datagram } = generator.next();
        kinds[kind] = (kinds[kind] ?? 0) + 1;
        pending.push(
          new Promise<void>((resolve, reject) => socket.send(datagram, options.port, options.to, (error) => (error ? reject(error) : resolve()))),
        );
      }
      await Promise.all(pending);
      sent += batch;
    }
  } finally {
    socket.close();
  }
  return { sent, kinds, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      to: { type: 'string' },
      from: { type: 'string' },
      port: { type: 'string', default: '4789' },
      vni: { type: 'string', default: '100' },
      count: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '1' },
      kinds: { type: 'string' },
      'huge-every': { type: 'string', default: '0' },
    },
  });
  if (!values.to) throw new Error('--to ADDRESS is required');
  const kinds = values.kinds?.split(',').map((k) => k.trim()) as FuzzKind[] | undefined;
  for (const kind of kinds ?? []) {
    if (!(FUZZ_KINDS as readonly string[]).includes(kind) && kind !== HUGE) throw new Error(`unknown kind ${kind} (${FUZZ_KINDS.join(', ')}, ${HUGE})`);
  }
  const result = await fuzz({
    to: values.to,
    from: values.from,
    port: Number(values.port),
    vni: Number(values.vni),
    count: Number(values.count),
    seed: Number(values.seed),
    kinds,
    hugeEvery: Number(values['huge-every']),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`fuzz: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
