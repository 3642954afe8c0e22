import { diffConfig, planConfigChange, renderConfigDiff, type ConfigValue } from '../charm-meta/index.js';
import { readConfig, writeConfig } from '../controller/config-store.js';
import { UserError, type ModelContext } from './context.js';

export interface ConfigCommandOptions {
  args: string[];
  reset: string[];
  diff: boolean;
  color: boolean;
}

/**
 * `pgcharm config`: without arguments the effective config (and what the user set); with
 * `key=value` / `--reset key` the change is validated against charm.yaml in full and stored
 * only if every part of it is valid; `--diff` shows what would change and stores nothing.
 */
export async function configCommand(ctx: Pick<ModelContext, 'store' | 'app'>, o: ConfigCommandOptions): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const stored = await readConfig(ctx.store);
    if (!stored) throw new UserError(`application ${ctx.app} has no config yet (is the deployment finished?)`);
    if (o.args.length === 0 && o.reset.length === 0) {
      if (o.diff) throw new UserError('--diff needs key=value or --reset arguments to compare');
      return show(stored.deployed, stored.settings);
    }
    const plan = planConfigChange(stored.meta, stored, o.args, o.reset); // throws ConfigError with every problem
    const text = renderConfigDiff(diffConfig(stored.deployed, plan.effective), { from: 'deployed', to: o.diff ? 'proposed' : 'applied', color: o.color });
    if (o.diff) return text + '\n';
    if (plan.changes.length === 0 && JSON.stringify(plan.settings) === JSON.stringify(stored.settings)) return 'no changes\n';
    if (await writeConfig(ctx.store, plan, stored.charmText, stored.hash)) return text + '\n';
    // Someone changed the config between our read and write: validate against the new one.
  }
  throw new UserError('the config kept changing while this edit was being applied; try again');
}

function show(values: Record<string, ConfigValue>, settings: Record<string, ConfigValue>): string {
  const width = Math.max(...Object.keys(values).map((k) => k.length));
  return (
    Object.entries(values)
      .map(([k, v]) => `${k.padEnd(width)}  ${JSON.stringify(v)}${Object.hasOwn(settings, k) ? '  (set by user)' : ''}`)
      .join('\n') + '\n'
  );
}
