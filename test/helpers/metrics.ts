// Reading what tsvtep serves on --metrics: an HTTP request made from inside a
// namespace (the endpoint listens on the host's own loopback), and a small
// parser of the Prometheus text format.

import { spawnSync } from 'node:child_process';
import type { Topology } from '../../src/lab/topology';

export interface HttpResult {
  status: number;
  contentType: string | null;
  body: string;
}

const FETCH = `
fetch(process.argv[1], { method: process.argv[2] }).then(
  async (r) => {
    const out = JSON.stringify({ status: r.status, contentType: r.headers.get('content-type'), body: await r.text() });
    process.stdout.write(out, () => process.exit(0));
  },
  (e) => { process.stderr.write(String(e.cause ?? e) + '\\n'); process.exit(1); },
);
`;

/** One HTTP request from inside namespace ns; throws if it cannot connect. */
export async function httpRequest(topology: Topology, ns: string, url: string, method = 'GET'): Promise<HttpResult> {
  const out = await topology.execOk(ns, [process.execPath, '-e', FETCH, url, method], 15_000);
  return JSON.parse(out) as HttpResult;
}

/** GET url in ns, which must answer 200; returns the parsed samples. */
export async function scrape(topology: Topology, ns: string, url: string): Promise<Samples> {
  const result = await httpRequest(topology, ns, url);
  if (result.status !== 200) throw new Error(`GET ${url} in ${ns}: ${result.status} ${result.body}`);
  return parseSamples(result.body);
}

export interface Family {
  name: string;
  type?: string;
  help?: string;
}

/** The samples of one scrape: values by series, and the metric families with their TYPE and HELP. */
export class Samples {
  readonly values = new Map<string, number>();
  readonly families = new Map<string, Family>();

  constructor(readonly text: string) {}

  /** The value of name{labels}, exactly these labels; undefined if there is no such series. */
  get(name: string, labels: Record<string, string> = {}): number | undefined {
    return this.values.get(seriesKey(name, labels));
  }

  /** Like get, but the series must exist. */
  value(name: string, labels: Record<string, string> = {}): number {
    const v = this.get(name, labels);
    if (v === undefined) throw new Error(`no series ${seriesKey(name, labels)} in the scrape`);
    return v;
  }

  /** Every series of a metric, as [labels, value]. */
  series(name: string): [Record<string, string>, number][] {
    const out: [Record<string, string>, number][] = [];
    for (const [key, value] of this.values) {
      const parsed = parseSeriesKey(key);
      if (parsed.name === name) out.push([parsed.labels, value]);
    }
    return out;
  }
}

export function seriesKey(name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

function parseSeriesKey(key: string): { name: string; labels: Record<string, string> } {
  const brace = key.indexOf('{');
  if (brace < 0) return { name: key, labels: {} };
  const labels: Record<string, string> = {};
  for (const m of key.slice(brace + 1, -1).matchAll(/(\w+)=("(?:[^"\\]|\\.)*")/g)) labels[m[1]] = JSON.parse(m[2]) as string;
  return { name: key.slice(0, brace), labels };
}

/** Parses the Prometheus text format (version 0.0.4), enough for what prom-client writes. */
export function parseSamples(text: string): Samples {
  const samples = new Samples(text);
  const family = (name: string): Family => {
    let f = samples.families.get(name);
    if (!f) samples.families.set(name, (f = { name }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'HELP') family(meta[2]).help = meta[3];
      else family(meta[2]).type = meta[3];
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`cannot parse metrics line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].slice(1, -1).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.values.set(seriesKey(m[1], labels), Number(m[3]));
  }
  return samples;
}

/** `promtool check metrics` on text: its exit code and everything it printed (problems, one per line). */
export function promtoolCheck(text: string): { code: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (result.error) throw result.error;
  return { code: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}
