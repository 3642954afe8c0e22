import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { combineInto, combineLayers } from './combine.js';
import { parseLayer, parseLayerFileName, validateLabel } from './layer.js';
import { PlanError, type Layer, type Plan } from './types.js';

/**
 * Holds the layers and the combined plan. Every change builds a complete new plan first
 * and only swaps it in when it validates, so a bad layer never leaves a half-applied plan.
 * Layers added over the API live in memory, as in Pebble; the layers/ directory is read at start.
 */
export class PlanManager extends EventEmitter {
  private current: Plan = { layers: [], services: {}, checks: {}, 'log-targets': {} };

  get plan(): Plan {
    return this.current;
  }

  loadDir(dir: string): void {
    const layersDir = join(dir, 'layers');
    if (!existsSync(layersDir)) {
      mkdirSync(layersDir, { recursive: true, mode: 0o700 });
      return;
    }
    const seenOrder = new Map<number, string>();
    const seenLabel = new Map<string, number>();
    const layers: Layer[] = [];
    for (const file of readdirSync(layersDir).sort()) {
      const full = join(layersDir, file);
      if (!file.endsWith('.yaml') || statSync(full).isDirectory()) continue;
      const { order, label } = parseLayerFileName(file);
      const dup = seenOrder.get(order) ?? (seenLabel.has(label) ? label : undefined);
      if (dup !== undefined) {
        throw new PlanError(`invalid layer filename: ${JSON.stringify(file)} not unique (order ${order} or label ${JSON.stringify(label)} already used)`);
      }
      seenOrder.set(order, label);
      seenLabel.set(label, order);
      layers.push(parseLayer(order, label, readFileSync(full, 'utf8')));
    }
    this.swap(combineLayers(layers));
  }

  /**
   * Pebble's add-layer: with combine, a layer whose label exists is merged into it in place;
   * otherwise the label must be new and the layer goes on top.
   */
  addLayer(label: string, yamlText: string, combine: boolean): void {
    validateLabel(label);
    const existing = this.current.layers.findIndex((l) => l.label === label);
    const layers = [...this.current.layers];
    if (existing >= 0) {
      if (!combine) throw new PlanError(`layer ${JSON.stringify(label)} already exists`);
      const old = layers[existing]!;
      const incoming = parseLayer(old.order, label, yamlText);
      layers[existing] = { ...combineInto(old, incoming), order: old.order, label };
    } else {
      const order = layers.length ? Math.max(...layers.map((l) => l.order)) + 1 : 1;
      layers.push(parseLayer(order, label, yamlText));
    }
    this.swap(combineLayers(layers));
  }

  private swap(plan: Plan): void {
    this.current = plan;
    this.emit('changed', plan);
  }
}
