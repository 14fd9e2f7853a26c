// Turns the system benchmark's per-run samples into medians, tsvtep/kernel
// ratios and the targets of issue 6, as a text table and as chart bars.

import type { ChartBar } from './chart';
import { median } from './measure';

/** One run of one variant: metric key -> value. */
export type Sample = Record<string, number>;

export interface Metric {
  key: string;
  label: string;
  unit: string;
  digits: number;
  /** Which way is better; decides nothing but is printed in the table. */
  better: 'higher' | 'lower';
  /** Compared as a tsvtep/kernel ratio (false for loss, where 0 is common). */
  ratio: boolean;
}

/** Measured on both kernel vxlan and tsvtep. */
export const COMPARED: Metric[] = [
  { key: 'tcp1Gbps', label: 'TCP, 1 stream', unit: 'Gbit/s', digits: 2, better: 'higher', ratio: true },
  { key: 'tcp4Gbps', label: 'TCP, 4 streams', unit: 'Gbit/s', digits: 2, better: 'higher', ratio: true },
  { key: 'udp64Kpps', label: 'UDP 64 B, received', unit: 'kpps', digits: 0, better: 'higher', ratio: true },
  { key: 'udp64LossPct', label: 'UDP 64 B, lost', unit: '%', digits: 1, better: 'lower', ratio: false },
  { key: 'udp1400Kpps', label: 'UDP 1400 B, received', unit: 'kpps', digits: 0, better: 'higher', ratio: true },
  { key: 'udp1400LossPct', label: 'UDP 1400 B, lost', unit: '%', digits: 1, better: 'lower', ratio: false },
  { key: 'pingMedianMs', label: 'ping RTT, median', unit: 'ms', digits: 3, better: 'lower', ratio: true },
  { key: 'pingP99Ms', label: 'ping RTT, p99', unit: 'ms', digits: 3, better: 'lower', ratio: true },
];

/** Measured on tsvtep only. */
export const TSVTEP_ONLY: Metric[] = [
  { key: 'cpuCoresPerGbps', label: 'CPU per Gbit/s, TCP 1 stream', unit: 'cores', digits: 2, better: 'lower', ratio: false },
  { key: 'cpuCoresTcp1', label: 'CPU busy, TCP 1 stream', unit: 'cores', digits: 2, better: 'lower', ratio: false },
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
  { text: 'UDP 64 B pps received >= 0.9x kernel', key: 'udp64Kpps', on: 'ratio', op: '>=', value: 0.9 },
  { text: 'ping median <= 2x kernel', key: 'pingMedianMs', on: 'ratio', op: '<=', value: 2 },
  { text: 'RSS under load <= 80 MB', key: 'hwmMb', on: 'tsvtep', op: '<=', value: 80 },
];

export interface Row {
  key: string;
  label: string;
  unit: string;
  kernel?: { median: number; min: number; max: number };
  tsvtep: { median: number; min: number; max: number };
  ratio?: number;
}

export interface TargetResult extends Target {
  measured: number;
  met: boolean;
}

export interface Summary {
  rows: Row[];
  targets: TargetResult[];
}

export function summarise(kernel: Sample[], tsvtep: Sample[]): Summary {
  const stats = (samples: Sample[], key: string) => {
    const values = samples.map((s) => s[key]).filter((v) => Number.isFinite(v));
    return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
  };
  const rows: Row[] = [];
  for (const m of COMPARED) {
    const k = stats(kernel, m.key);
    const t = stats(tsvtep, m.key);
    rows.push({ key: m.key, label: m.label, unit: m.unit, kernel: k, tsvtep: t, ratio: m.ratio ? t.median / k.median : undefined });
  }
  for (const m of TSVTEP_ONLY) rows.push({ key: m.key, label: m.label, unit: m.unit, tsvtep: stats(tsvtep, m.key) });
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const targets = TARGETS.map((target): TargetResult => {
    const row = byKey.get(target.key) as Row;
    const measured = target.on === 'ratio' ? (row.ratio ?? NaN) : row.tsvtep.median;
    const met = target.op === '>=' ? measured >= target.value : measured <= target.value;
    return { ...target, measured, met };
  });
  return { rows, targets };
}

export function formatTable(summary: Summary): string {
  const metrics = new Map([...COMPARED, ...TSVTEP_ONLY].map((m) => [m.key, m]));
  const cell = (s: { median: number; min: number; max: number } | undefined, digits: number): string =>
    s === undefined ? '' : `${fmt(s.median, digits)} [${fmt(s.min, digits)}-${fmt(s.max, digits)}]`;
  const header = ['metric', 'unit', 'kernel vxlan', 'tsvtep', 'tsvtep/kernel'];
  const lines = summary.rows.map((r) => {
    const m = metrics.get(r.key) as Metric;
    return [r.label, r.unit, cell(r.kernel, m.digits), cell(r.tsvtep, m.digits), r.ratio === undefined ? '' : r.ratio.toFixed(2)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [row(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(row)];
  out.push('', 'medians over runs, [min-max] across runs', '', 'targets:');
  for (const t of summary.targets) {
    const measured = t.on === 'ratio' ? `${t.measured.toFixed(2)}x` : `${t.measured.toFixed(1)} MB`;
    out.push(`  ${t.met ? 'met   ' : 'MISSED'}  ${t.text.padEnd(40)} measured ${measured}`);
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
