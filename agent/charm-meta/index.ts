/**
 * charm.yaml: metadata, config options and actions of the charm, with the checks that keep bad
 * input from changing anything (DESIGN.md invariant 4). See README.md in this folder.
 */
export { findCharmYaml, loadCharmYaml, parseCharmYaml } from './load.js';
export { validateCharmMeta } from './metadata.js';
export type { ActionSpec, CharmMeta, ConfigOption, Container, Mount, ParamSchema, ParamType, RelationEndpoint, Storage } from './schema.js';
export { NAME_RE, PARAM_TYPES } from './schema.js';
export { OPTION_TYPES, cidrList, memoryBytes, parseValueText, valueProblems } from './values.js';
export type { ConfigValue, ConfigValues, OptionType, StringFormat } from './values.js';
export { defaults, parseConfigArgs, planConfigChange, revalidateConfig, validateSettings } from './config.js';
export type { ConfigEdit, ConfigPlan, ConfigState } from './config.js';
export { diffConfig, renderConfigDiff } from './diff.js';
export type { ConfigChange, DiffRenderOptions } from './diff.js';
export { configHash } from './hash.js';
export { isSecretRef, referencedEntries, SECRET_SHOWN, sealValues, secretEntryKey, secretOptions, secretRef, shownValue, unsealValues } from './secret-config.js';
export type { Sealed } from './secret-config.js';
export { findAction, parseActionArgs, prepareAction, validateActionParams } from './actions.js';
export type { ActionParams, PreparedAction } from './actions.js';
export { paramsSchema } from './action-schema.js';
export { containerImage } from './images.js';
export { didYouMean } from './suggest.js';
export { ActionParamsError, CharmYamlError, ConfigError, ProblemsError, renderProblems } from './problems.js';
export type { Problem, RenderOptions } from './problems.js';
