import { diffConfig, type ConfigChange } from './diff.js';
import { ConfigError, describeValue, ProblemList } from './problems.js';
import type { CharmMeta, ConfigOption } from './schema.js';
import { suggestion } from './suggest.js';
import { parseValueText, valueProblems, type ConfigValue, type ConfigValues } from './values.js';

/**
 * The effective config is charm.yaml's defaults overlaid with the user's settings (only the
 * keys they set, kept apart so a later charm.yaml default still applies to the rest).
 *
 * Command-line forms (`pgcharm config`):
 *   key=value       set; the text is typed per the option ("true"/"false", decimal int, ...)
 *   key=            the empty string: valid for string options only
 *   --reset key     forget the user's setting, back to charm.yaml's default
 * A setting equal to the default is still kept: it pins the value if the default changes.
 *
 * Everything here is a pure function: it returns the new state or throws ConfigError listing
 * every problem, and then nothing is to be applied.
 */

export interface ConfigState {
  /** What the user set, and only that. */
  settings: ConfigValues;
  /** The effective config the deployment was given (`<app>-config`); absent before deploy. */
  deployed?: ConfigValues;
}

export interface ConfigEdit {
  set: Record<string, ConfigValue>;
  reset: string[];
}

export interface ConfigPlan {
  /** The user settings to store. */
  settings: ConfigValues;
  /** The effective config to store and apply. */
  effective: ConfigValues;
  /** effective against the deployed config (or, before deploy, against the previous one). */
  changes: ConfigChange[];
}

/** charm.yaml's defaults, in option order. */
export function defaults(meta: CharmMeta): ConfigValues {
  return Object.fromEntries(Object.values(meta.options).map((o) => [o.name, o.default]));
}

/** Defaults overlaid with settings, without checking them (settings for unknown keys are dropped). */
function overlay(meta: CharmMeta, settings: Readonly<Record<string, unknown>>): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = {};
  for (const o of Object.values(meta.options)) {
    out[o.name] = Object.hasOwn(settings, o.name) ? (settings[o.name] as ConfigValue) : o.default;
  }
  return out;
}

/** valueProblems, without echoing a secret option's value (only its type can be wrong: see metadata.ts). */
function problemsShown(opt: ConfigOption, v: unknown): string[] {
  const why = valueProblems(opt, v);
  return opt.secret && why.length ? [`expected ${opt.type}, got a ${v === null ? 'null' : typeof v} (value not shown: the option is secret)`] : why;
}

/** describeValue, except that a secret option's value (other than "") is not shown. */
function describeOpt(meta: CharmMeta, key: string, v: unknown): string {
  const opt = Object.hasOwn(meta.options, key) ? meta.options[key] : undefined;
  return opt?.secret && v !== '' ? '(secret)' : describeValue(v);
}

function unknownOption(meta: CharmMeta, key: string): string {
  return `unknown option${suggestion(key, Object.keys(meta.options))}`;
}

function parseArgs(meta: CharmMeta, args: readonly string[], reset: readonly string[], sink: ProblemList): ConfigEdit {
  const edit: ConfigEdit = { set: {}, reset: [] };
  const seen = new Set<string>();
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) {
      const hint = Object.hasOwn(meta.options, arg) ? ` (to go back to the default: --reset ${arg})` : '';
      sink.add([arg], `expected key=value${hint}`);
      continue;
    }
    const key = arg.slice(0, eq);
    const text = arg.slice(eq + 1);
    const opt = Object.hasOwn(meta.options, key) ? meta.options[key] : undefined;
    if (!opt) {
      sink.add([key], unknownOption(meta, key));
      continue;
    }
    if (seen.has(key)) {
      sink.add([key], 'given more than once');
      continue;
    }
    seen.add(key);
    const parsed = parseValueText(opt.type, text);
    if ('error' in parsed) {
      sink.add([key], parsed.error + (text === '' ? `; to go back to the default use --reset ${key}` : ''));
      continue;
    }
    edit.set[key] = parsed.value;
  }
  for (const key of reset) {
    if (!Object.hasOwn(meta.options, key)) sink.add([key], unknownOption(meta, key));
    else if (seen.has(key)) sink.add([key], 'both set and reset');
    else if (!edit.reset.includes(key)) edit.reset.push(key);
  }
  return edit;
}

/** Parses `key=value` arguments and `--reset` keys, typing each value per its option. */
export function parseConfigArgs(meta: CharmMeta, args: readonly string[], reset: readonly string[] = []): ConfigEdit {
  const sink = new ProblemList();
  const edit = parseArgs(meta, args, reset, sink);
  if (!sink.empty) throw new ConfigError(sink.toProblems());
  return edit;
}

/** Why an immutable option the user did not set would differ (its default), for the message. */
type Cause = (key: string, value: ConfigValue) => string;

function checkSettings(
  meta: CharmMeta,
  settings: Readonly<Record<string, unknown>>,
  deployed: ConfigValues | undefined,
  sink: ProblemList,
  cause: Cause,
  alreadyReported: ReadonlySet<string> = new Set(),
): Record<string, ConfigValue> {
  for (const key of Object.keys(settings)) {
    const opt = Object.hasOwn(meta.options, key) ? meta.options[key] : undefined;
    if (!opt) sink.add([key], unknownOption(meta, key));
    else for (const w of problemsShown(opt, settings[key])) sink.add([key], w);
  }
  const effective = overlay(meta, settings);
  if (deployed) {
    for (const opt of Object.values(meta.options)) {
      if (!opt.immutable || !Object.hasOwn(deployed, opt.name) || alreadyReported.has(opt.name)) continue;
      const was = deployed[opt.name]!;
      const now = effective[opt.name]!;
      if (now !== was) {
        const why = Object.hasOwn(settings, opt.name) ? `asked for ${describeOpt(meta, opt.name, now)}` : cause(opt.name, now);
        sink.add([opt.name], `immutable after deploy (deployed with ${describeOpt(meta, opt.name, was)}, ${why})`);
      }
    }
  }
  return effective;
}

/**
 * Checks user settings against charm.yaml and returns the effective config: types, ranges,
 * allowed values, unknown keys (with a did-you-mean), and, when `deployed` is given, that no
 * immutable option would change.
 */
export function validateSettings(meta: CharmMeta, settings: Readonly<Record<string, unknown>>, deployed?: ConfigValues): ConfigValues {
  const sink = new ProblemList();
  const effective = checkSettings(meta, settings, deployed, sink, (_k, v) => `the default is ${describeValue(v)}`);
  if (!sink.empty) throw new ConfigError(sink.toProblems());
  return effective;
}

/**
 * `pgcharm config key=value... [--reset key...]` as one pure step: parse, apply to the stored
 * settings, validate the result. Problems in the arguments and in the result are all reported
 * together.
 */
export function planConfigChange(meta: CharmMeta, state: ConfigState, args: readonly string[], reset: readonly string[] = []): ConfigPlan {
  const sink = new ProblemList();
  const edit = parseArgs(meta, args, reset, sink);
  const settings: Record<string, ConfigValue> = {};
  for (const [k, v] of Object.entries(state.settings)) if (!edit.reset.includes(k)) settings[k] = v;
  Object.assign(settings, edit.set);
  const effective = checkSettings(meta, settings, state.deployed, sink, (key, v) =>
    edit.reset.includes(key) ? `reset would make it the default ${describeValue(v)}` : `the default is ${describeValue(v)}`,
  );
  if (!sink.empty) throw new ConfigError(sink.toProblems());
  const previous = state.deployed ?? overlay(meta, state.settings);
  return { settings, effective, changes: diffConfig(previous, effective) };
}

/**
 * charm.yaml changed under a deployment: recompute the effective config from the stored
 * settings under `newMeta`, or refuse with every reason. Refused: a setting for an option that
 * is gone or that no longer fits (type, range, allowed values); an immutable option whose
 * value would change because its default did. Options that are gone and were not set simply
 * disappear (they show in `changes`).
 */
export function revalidateConfig(oldMeta: CharmMeta, newMeta: CharmMeta, state: ConfigState): ConfigPlan {
  const sink = new ProblemList();
  const newKeys = Object.keys(newMeta.options);
  const kept: Record<string, ConfigValue> = {};
  const refused = new Set<string>();
  for (const [key, value] of Object.entries(state.settings)) {
    const opt = Object.hasOwn(newMeta.options, key) ? newMeta.options[key] : undefined;
    if (!opt) {
      sink.add(
        [key],
        `set to ${describeOpt(oldMeta, key, value)}, but charm.yaml no longer has this option${suggestion(key, newKeys)} (reset it first: pgcharm config --reset ${key})`,
      );
      continue;
    }
    const why = problemsShown(opt, value);
    for (const w of why) sink.add([key], `your setting no longer fits charm.yaml: ${w}`);
    if (why.length) refused.add(key);
    else kept[key] = value;
  }
  const effective = checkSettings(
    newMeta,
    kept,
    state.deployed,
    sink,
    (key, v) => {
      const old = Object.hasOwn(oldMeta.options, key) ? oldMeta.options[key]!.default : undefined;
      const change = old !== undefined && old !== v ? `charm.yaml changed its default from ${describeValue(old)} to ${describeValue(v)}` : `the default is ${describeValue(v)}`;
      const was = state.deployed![key]!;
      const unfit = valueProblems(newMeta.options[key]!, was);
      // Pinning only helps if the new charm.yaml still accepts the deployed value.
      if (unfit.length) return `${change}, and it no longer accepts ${describeOpt(newMeta, key, was)}: ${unfit.join('; ')}`;
      return `${change}; keep the old default or pin it first: pgcharm config ${key}=${newMeta.options[key]!.secret ? '...' : String(was)}`;
    },
    refused,
  );
  if (!sink.empty) throw new ConfigError(sink.toProblems(), 'charm.yaml change refused');
  const previous = state.deployed ?? overlay(oldMeta, state.settings);
  return { settings: state.settings, effective, changes: diffConfig(previous, effective) };
}
