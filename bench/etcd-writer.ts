// The simulated fleet of bench:etcd, run inside the namespace that can reach
// etcd: registers N hosts the way tsvtep does (one lease each, a member key per
// VNI and mac keys under it), or adds one member, and prints what it did as JSON.
//
//   node etcd-writer.js populate URL HOSTS VNIS MACS_PER_VNI
//   node etcd-writer.js add URL VNI ADDRESS

import { Etcd3 } from 'etcd3';
import { macKey, macValue, memberKey, memberValue } from '../src/control-plane/etcd/keys';

const PREFIX = '/tsvtep/';
const TXN_OPS = 128;
const PARALLEL_HOSTS = 8;
const LEASE_TTL_S = 600;

/** 10.1.0.0 + i: simulated VTEP addresses, none of them on the test underlay. */
export function simulatedAddress(i: number): string {
  return `10.${1 + ((i >> 16) & 0xff)}.${(i >> 8) & 0xff}.${i & 0xff}`;
}

function simulatedMac(host: number, vni: number, k: number): string {
  return ['02', 'aa', (host >> 8) & 0xff, host & 0xff, vni & 0xff, k & 0xff].map((b) => (typeof b === 'string' ? b : b.toString(16).padStart(2, '0'))).join(':');
}

async function registerHost(client: Etcd3, host: number, vnis: number[], macs: number): Promise<number> {
  const lease = await client.leaseClient.leaseGrant({ TTL: LEASE_TTL_S });
  const vtep = simulatedAddress(host);
  const ops: { request_put: { key: Buffer; value: Buffer; lease: string } }[] = [];
  for (const vni of vnis) {
    ops.push({ request_put: { key: Buffer.from(memberKey(PREFIX, vni, vtep)), value: Buffer.from(memberValue(vtep, `sim${host}`)), lease: lease.ID } });
    for (let k = 0; k < macs; k++) {
      const ip = `172.${16 + (vni & 0xf)}.${(host >> 8) & 0xff}.${host & 0xff}`;
      ops.push({ request_put: { key: Buffer.from(macKey(PREFIX, vni, simulatedMac(host, vni, k), vtep)), value: Buffer.from(macValue(k === 0 ? [ip] : [], 0)), lease: lease.ID } });
    }
  }
  for (let i = 0; i < ops.length; i += TXN_OPS) await client.kv.txn({ success: ops.slice(i, i + TXN_OPS) });
  return ops.length;
}

async function main(argv: string[]): Promise<void> {
  const [command, url, ...rest] = argv;
  const client = new Etcd3({ hosts: url });
  try {
    if (command === 'populate') {
      const [hosts, vniCount, macs] = rest.map(Number);
      const vnis = Array.from({ length: vniCount }, (_, i) => 1000 + i);
      const started = Date.now();
      let keys = 0;
      let next = 0;
      await Promise.all(
        Array.from({ length: PARALLEL_HOSTS }, async () => {
          for (let host = next++; host < hosts; host = next++) {
            const written = await registerHost(client, host, vnis, macs);
            keys += written;
          }
        }),
      );
      const seconds = (Date.now() - started) / 1000;
      process.stdout.write(`${JSON.stringify({ hosts, keys, leases: hosts, seconds, keysPerSecond: Math.round(keys / seconds) })}\n`);
    } else if (command === 'add') {
      const [vni, address] = rest;
      const lease = await client.leaseClient.leaseGrant({ TTL: LEASE_TTL_S });
      await client.kv.put({ key: Buffer.from(memberKey(PREFIX, Number(vni), address)), value: Buffer.from(memberValue(address, 'added')), lease: lease.ID });
      process.stdout.write(`${JSON.stringify({ putAt: Date.now() })}\n`);
    } else {
      throw new Error(`unknown command ${command}`);
    }
  } finally {
    client.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`etcd-writer: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
