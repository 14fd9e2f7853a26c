// A horizontal bar chart of tsvtep/kernel ratios, written as SVG text: one bar
// per metric, a line at 1 (as good as the kernel), and the target where there
// is one. No plotting library: the picture is simple enough to spell out.

export interface ChartBar {
  label: string;
  /** A second, smaller line under the label (e.g. which way is better). */
  note?: string;
  /** tsvtep / kernel. */
  ratio: number;
  /** The ratio the target asks for, if any. */
  target?: number;
  /** True if the target is met, false if missed, undefined without a target. */
  met?: boolean;
}

const WIDTH = 760;
const LABEL_WIDTH = 210;
const VALUE_WIDTH = 70;
const BAR_HEIGHT = 26;
const GAP = 10;
const TOP = 56;
/** Ratios above this run off the right edge (cut, value printed), so small ones stay readable. */
const SCALE_CAP = 6;
const BOTTOM = 44;

export function ratioChart(title: string, subtitle: string, bars: ChartBar[]): string {
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20;
  const finite = bars.map((b) => b.ratio).filter((r) => Number.isFinite(r));
  const targets = bars.map((b) => b.target ?? 0);
  const top = Math.min(SCALE_CAP, Math.max(1.2, ...finite, ...targets) * 1.08);
  const maxScale = Math.ceil(top * 4) / 4;
  const x = (value: number): number => LABEL_WIDTH + (Math.max(0, value) / maxScale) * plotWidth;
  const height = TOP + bars.length * (BAR_HEIGHT + GAP) + BOTTOM;
  const plotBottom = TOP + bars.length * (BAR_HEIGHT + GAP) - GAP / 2;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${escape(title)}</text>`,
    `<text x="${WIDTH / 2}" y="40" text-anchor="middle" fill="#555">${escape(subtitle)}</text>`,
  );
  // Grid and axis ticks every 0.25 or 0.5.
  const step = maxScale > 3 ? 1 : maxScale > 1.5 ? 0.5 : 0.25;
  // (with the cap, there are at most SCALE_CAP / step + 1 grid lines)
  for (let v = 0; v <= maxScale + 1e-9; v += step) {
    const gx = x(v).toFixed(1);
    out.push(
      `<line x1="${gx}" y1="${TOP - 6}" x2="${gx}" y2="${plotBottom}" stroke="#e4e4e4"/>`,
      `<text x="${gx}" y="${plotBottom + 16}" text-anchor="middle" fill="#555">${fmt(v)}</text>`,
    );
  }
  bars.forEach((bar, i) => {
    const y = TOP + i * (BAR_HEIGHT + GAP);
    const colour = bar.met === undefined ? '#7f8c9a' : bar.met ? '#2e8b57' : '#c0392b';
    const cut = bar.ratio > maxScale;
    const w = Number.isFinite(bar.ratio) ? x(Math.min(bar.ratio, maxScale)) - LABEL_WIDTH : 0;
    const labelY = bar.note === undefined ? y + BAR_HEIGHT / 2 + 4 : y + 11;
    out.push(
      `<text x="${LABEL_WIDTH - 8}" y="${labelY}" text-anchor="end">${escape(bar.label)}</text>`,
      `<rect x="${LABEL_WIDTH}" y="${y}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" fill="${colour}"/>`,
    );
    if (bar.note !== undefined) {
      out.push(`<text x="${LABEL_WIDTH - 8}" y="${y + 24}" text-anchor="end" font-size="11" fill="#666">${escape(bar.note)}</text>`);
    }
    // The value goes right of the bar, or right of the target mark if that is further.
    let valueX = LABEL_WIDTH + w + 6;
    if (bar.target !== undefined) {
      const tx = x(bar.target);
      out.push(
        `<line x1="${tx.toFixed(1)}" y1="${y - 3}" x2="${tx.toFixed(1)}" y2="${y + BAR_HEIGHT + 3}" stroke="black" stroke-width="2" stroke-dasharray="3,2"/>`,
      );
      if (Math.abs(tx - (LABEL_WIDTH + w)) < 40) valueX = Math.max(valueX, tx + 6);
    }
    const value = Number.isFinite(bar.ratio) ? bar.ratio.toFixed(2) : 'n/a';
    if (cut) {
      // Off the scale: a white break near the end of the bar, the value inside it.
      const end = LABEL_WIDTH + w;
      out.push(
        `<path d="M ${end - 70} ${y - 1} l 6 ${BAR_HEIGHT / 2 + 1} l -6 ${BAR_HEIGHT / 2 + 1}" stroke="white" stroke-width="4" fill="none"/>`,
        `<text x="${end - 6}" y="${y + BAR_HEIGHT / 2 + 4}" text-anchor="end" font-weight="bold" fill="white">${value}</text>`,
      );
    } else {
      out.push(`<text x="${valueX.toFixed(1)}" y="${y + BAR_HEIGHT / 2 + 4}" font-weight="bold">${value}</text>`);
    }
  });
  const one = x(1).toFixed(1);
  out.push(
    `<line x1="${one}" y1="${TOP - 6}" x2="${one}" y2="${plotBottom}" stroke="#333" stroke-width="1.5"/>`,
    `<text x="${WIDTH / 2}" y="${height - 8}" text-anchor="middle" font-size="12" fill="#555">1 = as kernel vxlan. Dashed mark: target. Green: met, red: missed, grey: no target.</text>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/0$/, '');
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
