// prom-client collectors whose values are read from plain numbers at scrape
// time (the data path only increments numbers; nothing calls prom-client per
// packet). Shared by the data-plane and the control-plane metrics.

import { Counter, Gauge, type Registry } from 'prom-client';

export type Labels = Record<string, string>;
export type Emit = (labels: Labels, value: number) => void;

/** A Counter whose value is copied from plain numbers at scrape time. */
export function counterFrom(registry: Registry, name: string, help: string, labelNames: string[], read: (emit: Emit) => void): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: Counter) {
      this.reset();
      read((labels, value) => this.inc(labels, value));
    },
  });
}

/** A Gauge whose value is read at scrape time. */
export function gaugeFrom(registry: Registry, name: string, help: string, labelNames: string[], read: (emit: Emit) => void): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: Gauge) {
      this.reset();
      read((labels, value) => this.set(labels, value));
    },
  });
}
