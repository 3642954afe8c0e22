import pg from 'pg';
import { parse } from 'yaml';
import type { TestModel } from './model.js';

/** One statement (or several) on a fresh connection; the rows of the last. */
export async function q(uri: string, sql: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: uri });
  await c.connect();
  try {
    return (await c.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

export interface ActionOutcome {
  status: string;
  message?: string;
  results?: Record<string, unknown>;
  /** The action's log lines (timestamp first). */
  log?: string[];
}

/** `pgcharm run UNIT ACTION PARAMS --wait`, the outcome as the CLI printed it (YAML keyed by unit). */
export async function runAction(m: TestModel, unit: string, action: string, params: string[] = [], extra: string[] = []): Promise<ActionOutcome> {
  const r = await m.cli(['run', ...extra, unit, action, ...params, '--wait'], 120_000);
  const doc = (parse(r.stdout || '{}') ?? {}) as Record<string, ActionOutcome>;
  return Object.values(doc)[0]!;
}
