import { diffConfig, planConfigChange, renderConfigDiff, secretOptions, type CharmMeta, type ConfigValue } from '../charm-meta/index.js';
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
      return show(stored.meta, stored.deployed, stored.settings, stored.unresolved);
    }
    const plan = planConfigChange(stored.meta, stored, o.args, o.reset); // throws ConfigError with every problem
    const text = renderConfigDiff(diffConfig(stored.deployed, plan.effective), { from: 'deployed', to: o.diff ? 'proposed' : 'applied', color: o.color, secret: secretOptions(stored.meta) });
    if (o.diff) return text + '\n';
    if (plan.changes.length === 0 && JSON.stringify(plan.settings) === JSON.stringify(stored.settings)) return 'no changes\n';
    if (await writeConfig(ctx.store, stored.meta, plan, stored.charmText, stored.hash)) return text + '\n';
    // Someone changed the config between our read and write: validate against the new one.
  }
  throw new UserError('the config kept changing while this edit was being applied; try again');
}

/** Secret options show `(secret)` (or `""` when unset); their values never reach the terminal. */
function show(meta: CharmMeta, values: Record<string, ConfigValue>, settings: Record<string, ConfigValue>, unresolved: readonly string[]): string {
  const width = Math.max(...Object.keys(values).map((k) => k.length));
  const secret = secretOptions(meta);
  const value = (k: string, v: ConfigValue) => {
    if (unresolved.includes(k)) return '(secret, missing from the Secret: set it again)';
    return secret.includes(k) && v !== '' ? '(secret)' : JSON.stringify(v);
  };
  return (
    Object.entries(values)
      .map(([k, v]) => `${k.padEnd(width)}  ${value(k, v)}${Object.hasOwn(settings, k) ? '  (set by user)' : ''}`)
      .join('\n') + '\n'
  );
}

export { settingsFromFile } from './user-error.js';
