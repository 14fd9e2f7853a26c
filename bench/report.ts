// Turns the system benchmark's per-run samples into medians, tsvtep/kernel
// ratios and the targets, as a text table and as chart bars. The wire lab (no
// tunnel) is shown beside them as the ceiling; ratios are to the kernel.

import type { ChartBar } from './chart';
import { median } from './measure';
import type { VariantName } from './variants';

/** One run of one variant: metric key -> value. */
export type Sample = Record<string, number>;

export interface Metric {
  key: string;
  label: string;
  unit: string;
  digits: number;
  /** Which way is better; decides nothing but is printed in the chart. */
  better: 'higher' | 'lower';
  /** Compared as a tsvtep/kernel ratio. */
  ratio: boolean;
}

/** Measured in every lab. */
export const COMPARED: Metric[] = [
  { key: 'tcp1Gbps', label: 'TCP, 1 stream', unit: 'Gbit/s', digits: 2, better: 'higher', ratio: true },
  { key: 'tcp4Gbps', label: 'TCP, 4 streams', unit: 'Gbit/s', digits: 2, better: 'higher', ratio: true },
  { key: 'cpuPerGbps', label: 'CPU per Gbit/s, TCP 1 stream, machine', unit: 'cores', digits: 3, better: 'lower', ratio: true },
  { key: 'machineCoresTcp1', label: 'CPU busy, TCP 1 stream, machine', unit: 'cores', digits: 2, better: 'lower', ratio: false },
  { key: 'udp64LossFreeKpps', label: 'UDP 64 B, loss-free rate', unit: 'kpps', digits: 1, better: 'higher', ratio: true },
  { key: 'udp64ReceiverDropPct', label: '  dropped by the receiving iperf3 there', unit: '%', digits: 1, better: 'lower', ratio: false },
  { key: 'udp1400LossFreeKpps', label: 'UDP 1400 B, loss-free rate', unit: 'kpps', digits: 1, better: 'higher', ratio: true },
  { key: 'udp1400ReceiverDropPct', label: '  dropped by the receiving iperf3 there', unit: '%', digits: 1, better: 'lower', ratio: false },
  { key: 'pingIdleMedianMs', label: 'ping at 5/s, median', unit: 'ms', digits: 3, better: 'lower', ratio: true },
  { key: 'pingIdleP99Ms', label: 'ping at 5/s, p99', unit: 'ms', digits: 3, better: 'lower', ratio: true },
  { key: 'pingBusyMedianMs', label: 'ping at 500/s, median', unit: 'ms', digits: 3, better: 'lower', ratio: true },
  { key: 'pingBusyP99Ms', label: 'ping at 500/s, p99', unit: 'ms', digits: 3, better: 'lower', ratio: true },
];

/** Measured on tsvtep only. */
export const TSVTEP_ONLY: Metric[] = [
  { key: 'daemonCoresTcp1', label: 'tsvtep daemons busy, TCP 1 stream', unit: 'cores', digits: 2, better: 'lower', ratio: false },
  { key: 'daemonSharePct', label: "tsvtep daemons' share of machine CPU", unit: '%', digits: 0, better: 'lower', ratio: false },
  { key: 'rssMb', label: 'VmRSS under load, run max', unit: 'MB', digits: 1, better: 'lower', ratio: false },
  { key: 'hwmMb', label: 'VmHWM (peak RSS)', unit: 'MB', digits: 1, better: 'lower', ratio: false },
];

export interface Target {
  text: string;
  /** The metric key and what it is compared on. */
  key: string;
  on: 'ratio' | 'tsvtep';
  op: '>=' | '<=';
  value: number;
}

export const TARGETS: Target[] = [
  { text: 'TCP single stream >= 0.5x kernel', key: 'tcp1Gbps', on: 'ratio', op: '>=', value: 0.5 },
  { text: 'CPU per Gbit/s <= 2x kernel', key: 'cpuPerGbps', on: 'ratio', op: '<=', value: 2 },
  { text: 'ping at 5/s, median <= 3x kernel', key: 'pingIdleMedianMs', on: 'ratio', op: '<=', value: 3 },
  { text: 'ping at 500/s, median <= 3x kernel', key: 'pingBusyMedianMs', on: 'ratio', op: '<=', value: 3 },
  { text: 'UDP 64 B loss-free rate >= 0.5x kernel', key: 'udp64LossFreeKpps', on: 'ratio', op: '>=', value: 0.5 },
  { text: 'RSS under load <= 80 MB', key: 'hwmMb', on: 'tsvtep', op: '<=', value: 80 },
];

export interface Stats {
  median: number;
  min: number;
  max: number;
}

export interface Row {
  key: string;
  label: string;
  unit: string;
  values: Partial<Record<VariantName, Stats>>;
  /** tsvtep / kernel, of the medians. */
  ratio?: number;
}

export interface TargetResult extends Target {
  measured: number;
  met: boolean;
  /** The kernel's figure was bound by the senders, so a "higher is better" ratio is an upper bound and proves nothing. */
  unproven?: boolean;
}

export interface Summary {
  rows: Row[];
  targets: TargetResult[];
  /** Per variant and UDP payload, the runs whose loss-free rate was bound by the senders. */
  senderBound: { variant: VariantName; payload: number; runs: number; of: number }[];
}

function stats(samples: Sample[], key: string): Stats | undefined {
  const values = samples.map((s) => s[key]).filter((v) => Number.isFinite(v));
  if (values.length === 0) return undefined;
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export function summarise(samples: Record<VariantName, Sample[]>): Summary {
  const rows: Row[] = [];
  for (const m of COMPARED) {
    const values = { kernel: stats(samples.kernel, m.key), tsvtep: stats(samples.tsvtep, m.key), wire: stats(samples.wire, m.key) };
    const ratio = m.ratio && values.kernel && values.tsvtep ? values.tsvtep.median / values.kernel.median : undefined;
    rows.push({ key: m.key, label: m.label, unit: m.unit, values, ratio });
  }
  for (const m of TSVTEP_ONLY) rows.push({ key: m.key, label: m.label, unit: m.unit, values: { tsvtep: stats(samples.tsvtep, m.key) } });
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const senderBound: Summary['senderBound'] = [];
  for (const variant of ['kernel', 'tsvtep', 'wire'] as const) {
    for (const payload of [64, 1400]) {
      const runs = samples[variant].filter((s) => s[`udp${payload}SenderBound`] === 1).length;
      if (runs > 0) senderBound.push({ variant, payload, runs, of: samples[variant].length });
    }
  }
  const kernelSenderBound = (key: string): boolean =>
    senderBound.some((b) => b.variant === 'kernel' && key === `udp${b.payload}LossFreeKpps` && b.runs * 2 > b.of);
  const targets = TARGETS.map((target): TargetResult => {
    const row = byKey.get(target.key) as Row;
    const measured = target.on === 'ratio' ? (row.ratio ?? NaN) : (row.values.tsvtep?.median ?? NaN);
    const unproven = target.on === 'ratio' && target.op === '>=' && kernelSenderBound(target.key);
    const met = !unproven && (target.op === '>=' ? measured >= target.value : measured <= target.value);
    return { ...target, measured, met, unproven };
  });
  return { rows, targets, senderBound };
}

export function formatTable(summary: Summary): string {
  const metrics = new Map([...COMPARED, ...TSVTEP_ONLY].map((m) => [m.key, m]));
  const cell = (s: Stats | undefined, digits: number): string =>
    s === undefined ? '' : `${fmt(s.median, digits)} [${fmt(s.min, digits)}-${fmt(s.max, digits)}]`;
  const header = ['metric', 'unit', 'kernel vxlan', 'tsvtep', 'tsvtep/kernel', 'wire (ceiling)'];
  const lines = summary.rows.map((r) => {
    const m = metrics.get(r.key) as Metric;
    return [r.label, r.unit, cell(r.values.kernel, m.digits), cell(r.values.tsvtep, m.digits), r.ratio === undefined ? '' : r.ratio.toFixed(2), cell(r.values.wire, m.digits)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [row(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(row)];
  out.push('', 'medians over runs, [min-max] across runs');
  for (const s of summary.senderBound) {
    out.push(
      `${s.variant}: UDP ${s.payload} B loss-free rate bound by the senders in ${s.runs} of ${s.of} run(s): ` +
        'no loss at the highest rate they could offer, so the true figure is at least this',
    );
  }
  out.push('', 'targets:');
  for (const t of summary.targets) {
    const measured = t.on === 'ratio' ? `${t.measured.toFixed(2)}x` : `${t.measured.toFixed(1)} MB`;
    const verdict = t.unproven ? 'UNPROVEN' : t.met ? 'met     ' : 'MISSED  ';
    const why = t.unproven ? " (the kernel's figure is a lower bound: at most this)" : '';
    out.push(`  ${verdict}  ${t.text.padEnd(40)} measured ${measured}${why}`);
  }
  return out.join('\n');
}

export function chartBars(summary: Summary): ChartBar[] {
  const targetByKey = new Map(summary.targets.filter((t) => t.on === 'ratio').map((t) => [t.key, t]));
  return summary.rows
    .filter((r) => r.ratio !== undefined)
    .map((r) => {
      const target = targetByKey.get(r.key);
      const better = (COMPARED.find((m) => m.key === r.key) as Metric).better;
      return {
        label: r.label,
        note: `${better} is better`,
        ratio: r.ratio as number,
        target: target?.value,
        met: target?.met,
      };
    });
}

function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}
