#!/usr/bin/env -S node --max-semi-space-size=1 --v8-pool-size=1 --single-threaded-gc --no-opt --no-sparkplug
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { charmModuleFor, DEFAULT_CHARM, DEFAULT_CHARM_MODULE } from './charm-location.js';
import { defaultModelDir } from './controller/model.js';

// Every command's code is imported by its action: `pgcharm agent` and `pgcharm controller` run
// for the model's lifetime, and what the other commands load (pg, the Kubernetes client's
// commands, yaml, ajv) would stay in their memory for nothing.
import { ROTATION_ENV, rotationFrom, type Rotation } from '../sidecar/logs/rotate.js';

function int(name: string, min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

const say = (s: string) => process.stderr.write(s + '\n');

/** --log-file and its caps, for the processes a local controller starts in the background. */
function logFileOptions(cmd: Command): Command {
  return cmd
    .option('--log-file <path>', 'log to this file, rotated by size, instead of stdout')
    .option('--log-max-size <size>', `with --log-file: rotate past this size, e.g. 512K, 10M (default $${ROTATION_ENV.maxSize}, else 10M)`)
    .option('--log-max-files <n>', `with --log-file: rotated files kept, FILE.1 … FILE.n (default $${ROTATION_ENV.maxFiles}, else 3)`);
}

interface LogFileFlags {
  logFile?: string;
  logMaxSize?: string;
  logMaxFiles?: string;
}

async function logFileOf(o: LogFileFlags): Promise<{ logFile?: { path: string; limits: Rotation } }> {
  const { UserError } = await import('./commands/context.js');
  if (!o.logFile) {
    if (o.logMaxSize !== undefined || o.logMaxFiles !== undefined) throw new UserError('--log-max-size and --log-max-files go with --log-file');
    return {};
  }
  try {
    return { logFile: { path: o.logFile, limits: rotationFrom({ maxSize: o.logMaxSize, maxFiles: o.logMaxFiles }) } };
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

const modelOption = () => new Option('-m, --model <dir>', 'model directory (default: $PGCHARM_MODEL, else /var/lib/pgcharm/default as root, ~/.local/share/pgcharm/default otherwise)').default(defaultModelDir(), '$PGCHARM_MODEL or per-user default');
/** Which application of the model (inferred when it has one). */
const appOption = () => new Option('--app <name>', 'the application (needed when the model has several)');
let exitCode = 0;

const program = new Command('pgcharm')
  .description('Highly available PostgreSQL, run the way a Juju Kubernetes charm runs it')
  .showHelpAfterError();

program
  .command('deploy')
  .description('start the local controller (if none runs) and deploy the charm with N units; returns once they settled')
  .addOption(modelOption())
  .option('-n, --units <n>', 'number of units', int('--units', 1, 9), 3)
  .option('--charm <path>', 'charm.yaml to deploy', DEFAULT_CHARM)
  .option('--app <name>', "application name (default: the charm's name); another name deploys another application into the same model")
  .addOption(new Option('--charm-module <path>', "the charm code (default: charm.js beside charm.yaml, or built under dist/)").hideHelp())
  .option('--timeout <seconds>', 'how long to wait for the units', int('--timeout', 1, 3600), 300)
  .option('--config <key=value...>', 'config settings, checked like `pgcharm config`', [])
  .option('--config-file <path>', 'config settings from a YAML map (keeps secret values such as override-root-password off the command line)')
  .option('--restore-from <repo>', 'build the cluster from this backup repository instead of initdb: a path, or s3://bucket/prefix (the endpoint in --config)')
  .option('--restore-to <target>', 'with --restore-from: latest (the default), a backup id, an LSN or a time')
  .option('--s3-credentials <file>', 'a JSON file with access-key and secret-key: set-s3-credentials runs on the leader as soon as there is one')
  .action(async (o: { model: string; units: number; charm: string; app?: string; charmModule?: string; timeout: number; config: string[]; configFile?: string; restoreFrom?: string; restoreTo?: string; s3Credentials?: string }) => {
    // Only what checks the input and starts the controller: the rest loads while it starts.
    const [{ settingsFromFile, UserError }, { deploy, restoreSettings }] = await Promise.all([import('./commands/user-error.js'), import('./commands/deploy.js')]);
    if (o.restoreTo !== undefined && o.restoreFrom === undefined) throw new UserError('--restore-to: only with --restore-from');
    const given = [...o.config, ...(o.configFile ? settingsFromFile(o.configFile, '--config-file') : [])];
    const config = [...given, ...(o.restoreFrom !== undefined ? restoreSettings(o.restoreFrom, o.restoreTo, given) : [])];
    const leaderActions = o.s3Credentials ? [{ action: 'set-s3-credentials', params: await paramsFromFile(o.s3Credentials, '--s3-credentials') }] : [];
    const charmModule = o.charmModule ?? charmModuleFor(o.charm);
    if (!charmModule) throw new UserError(`--charm ${o.charm}: no charm code found (charm.js beside it, or built under dist/ by \`npm run build\`); pass --charm-module`);
    const s = await deploy({ model: o.model, units: o.units, charm: o.charm, ...(o.app !== undefined ? { app: o.app } : {}), charmModule, timeoutMs: o.timeout * 1000, config, leaderActions, say });
    const [{ renderStatus }, { openModel }, { uris }] = await Promise.all([import('./commands/status.js'), import('./commands/context.js'), import('./commands/uri.js')]);
    process.stdout.write(renderStatus(s, 'tabular'));
    const ctx = await openModel(o.model, s.application.name);
    const uri = await uris(ctx, 'primary').catch(() => []);
    if (uri.length) {
      process.stdout.write(`\nConnection string (primary): ${uri[0]}\n`);
      process.stdout.write(`More: pgcharm uri replicas | pgcharm psql | pgcharm status | pgcharm debug-log   (--model ${o.model}${o.app !== undefined ? ` --app ${ctx.app}` : ''})\n`);
    }
    if (ctx.controller.dashboard) process.stdout.write(`Dashboard: ${ctx.controller.dashboard}\n`);
  });

program
  .command('status')
  .description('application, units, leader, workload and agent status (like juju status)')
  .addOption(modelOption())
  .addOption(appOption())
  .addOption(new Option('--format <format>', 'output format').choices(['tabular', 'yaml', 'json']).default('tabular'))
  .action(async (o: { model: string; app?: string; format: 'tabular' | 'yaml' | 'json' }) => {
    const [{ gatherOverview, gatherStatus, renderStatus }, { openApps, openModel }] = await Promise.all([import('./commands/status.js'), import('./commands/context.js')]);
    // Several applications and no --app: all of them, like juju status.
    const apps = o.app === undefined ? await openApps(o.model) : [];
    if (apps.length > 1) process.stdout.write(renderStatus(await gatherOverview(apps), o.format));
    // openModel for --app, and for a model without applications (its error names the model).
    else process.stdout.write(renderStatus(await gatherStatus(apps[0] ?? (await openModel(o.model, o.app))), o.format));
  });

program
  .command('config')
  .description('show the config, or change it: key=value... and --reset key; --diff shows the change without applying it')
  .addOption(modelOption())
  .argument('[settings...]', 'key=value pairs')
  .option('--reset <key...>', 'go back to the charm.yaml default', [])
  .option('--diff', 'show what would change and change nothing', false)
  .option('--file <path>', 'settings from a YAML map too (keeps secret values off the command line)')
  .option('--kubeconfig <path>', 'a Kubernetes cluster instead of a local model (with --namespace and --app)')
  .option('--namespace <ns>', 'with --kubeconfig: the namespace (default: the kubeconfig context)')
  .option('--app <name>', 'the application (needed when the model has several; with --kubeconfig, default postgresql)')
  .action(async (args: string[], o: { model: string; reset: string[]; diff: boolean; file?: string; kubeconfig?: string; namespace?: string; app?: string }) => {
    const [{ configCommand, settingsFromFile }, { checkAppName, clusterApp, openModel }] = await Promise.all([import('./commands/config.js'), import('./commands/context.js')]);
    // On a cluster the same validated write of <app>-config: the agents reload or restart Postgres in place.
    const ctx = o.kubeconfig ? clusterApp(o.kubeconfig, o.namespace, checkAppName(o.app ?? 'postgresql')) : await openModel(o.model, o.app);
    const all = [...args, ...(o.file ? settingsFromFile(o.file, '--file') : [])];
    process.stdout.write(await configCommand(ctx, { args: all, reset: o.reset, diff: o.diff, color: Boolean(process.stdout.isTTY) }));
  });

program
  .command('run')
  .description('run an action on a unit (or on the leader) and print its outcome as YAML')
  .addOption(modelOption())
  .addOption(appOption())
  .argument('<unit>', 'postgresql/0, 0, or leader')
  .argument('<action>', 'action name from charm.yaml')
  .argument('[params...]', 'key=value params')
  .option('--params <file>', 'read params from a JSON file (keeps secrets off the command line)')
  .option('--wait', 'wait for the outcome, showing log lines and progress', false)
  .option('--timeout <seconds>', 'with --wait: how long', int('--timeout', 1, 86400), 600)
  .action(async (unit: string, action: string, params: string[], o: { model: string; app?: string; params?: string; wait: boolean; timeout: number }) => {
    const [{ loadCharmYaml, prepareAction }, { readConfig }, { openModel }, { actionYaml, runAction }] = await Promise.all([import('./charm-meta/index.js'), import('./controller/config-store.js'), import('./commands/context.js'), import('./commands/run.js')]);
    const ctx = await openModel(o.model, o.app);
    const meta = (await readConfig(ctx.store))?.meta ?? (await loadCharmYaml(ctx.deployment.charm));
    const prepared = prepareAction(meta, action, [...params, ...(o.params ? await paramsFromFile(o.params) : [])]);
    const writeOnly = Object.entries(prepared.action.params).filter(([, p]) => p['writeOnly'] === true).map(([k]) => k);
    const rec = await runAction(ctx, unit, action, prepared.params, { wait: o.wait, timeoutMs: o.timeout * 1000, writeOnly, sensitive: prepared.action.sensitive, onProgress: (l) => say(l) });
    process.stdout.write(actionYaml(rec));
    if (rec.status === 'failed') exitCode = 1;
  });

program
  .command('integrate')
  .description('integrate two applications of the model (juju integrate): their endpoints are matched by interface; app:endpoint picks one')
  .addOption(modelOption())
  .argument('<app1>', 'application[:endpoint]')
  .argument('<app2>', 'application[:endpoint]')
  .action(async (a: string, b: string, o: { model: string }) => {
    const [{ integrate }, { openController }] = await Promise.all([import('./commands/integrate.js'), import('./commands/context.js')]);
    const r = await integrate(openController(o.model).kube, a, b);
    say(`integrated ${r.provider.app}:${r.provider.endpoint} and ${r.requirer.app}:${r.requirer.endpoint} (${r.interface}, relation ${r.id})`);
  });

program
  .command('remove-relation')
  .alias('remove-integration')
  .description('remove a relation: both sides run -departed and -broken, then it goes (by applications, or by relation id)')
  .addOption(modelOption())
  .argument('<app1-or-id>', 'application[:endpoint], or the relation id')
  .argument('[app2]', 'application[:endpoint]')
  .option('--timeout <seconds>', 'how long to wait for the units to leave', int('--timeout', 1, 3600), 60)
  .option('--force', 'remove what is left after the wait (a unit that is down)', false)
  .action(async (a: string, b: string | undefined, o: { model: string; timeout: number; force: boolean }) => {
    const [{ findRelation, listRelations, removeRelation }, { openController }] = await Promise.all([import('./commands/integrate.js'), import('./commands/context.js')]);
    const { kube } = openController(o.model);
    const r = findRelation(await listRelations(kube), a, b);
    const outcome = await removeRelation(kube, r, { timeoutMs: o.timeout * 1000, force: o.force, say });
    if (outcome === 'removed') say(`removed relation ${r.id} (${r.provider.app}:${r.provider.endpoint} ${r.requirer.app}:${r.requirer.endpoint})`);
    else exitCode = 1;
  });

program
  .command('add-unit')
  .description('add units (new unit numbers, never reused)')
  .addOption(modelOption())
  .addOption(appOption())
  .option('-n, --num-units <n>', 'how many', int('--num-units', 1, 9), 1)
  .action(async (o: { model: string; app?: string; numUnits: number }) => {
    const [{ addUnits }, { openModel }] = await Promise.all([import('./commands/units.js'), import('./commands/context.js')]);
    const added = await addUnits(await openModel(o.model, o.app), o.numUnits);
    say(`added ${added.join(', ')}`);
  });

program
  .command('remove-unit')
  .description('remove a unit: it leaves the peer relation, stops, and its directory is deleted')
  .addOption(modelOption())
  .addOption(appOption())
  .argument('<unit>')
  .action(async (unit: string, o: { model: string; app?: string }) => {
    const [{ removeUnit }, { openModel }] = await Promise.all([import('./commands/units.js'), import('./commands/context.js')]);
    say(`removing ${await removeUnit(await openModel(o.model, o.app), unit)}`);
  });

program
  .command('kill')
  .description('SIGKILL a whole unit (agent, sidecar, Postgres), like a node failure; it comes back after a delay')
  .addOption(modelOption())
  .addOption(appOption())
  .argument('<unit>', 'postgresql/0, 0, or leader')
  .option('--no-restart', 'leave it dead (until `pgcharm kill --revive UNIT`)')
  .option('--revive', 'bring back a unit killed with --no-restart', false)
  .action(async (unit: string, o: { model: string; app?: string; restart: boolean; revive: boolean }) => {
    const [{ killUnit, reviveUnit }, { openModel }] = await Promise.all([import('./commands/units.js'), import('./commands/context.js')]);
    const ctx = await openModel(o.model, o.app);
    if (o.revive) say(`reviving ${await reviveUnit(ctx, unit)}`);
    else say(`killed ${await killUnit(ctx, unit, !o.restart)}${o.restart ? '; it will be rescheduled' : ' (held down)'}`);
  });

program
  .command('exec')
  .description("run a command in a unit's workload container, through its sidecar")
  .addOption(modelOption())
  .addOption(appOption())
  .argument('<unit>')
  .argument('<command...>')
  .option('-t, --terminal', 'allocate a terminal', false)
  .option('-u, --user <user>', 'run as this user')
  .option('-w, --working-dir <dir>', 'working directory')
  .action(async (unit: string, cmd: string[], o: { model: string; app?: string; terminal: boolean; user?: string; workingDir?: string }) => {
    const [{ execCommand }, { openModel }] = await Promise.all([import('./commands/exec.js'), import('./commands/context.js')]);
    const code = await execCommand(await openModel(o.model, o.app), unit, cmd, { terminal: o.terminal, ...(o.user ? { user: o.user } : {}), ...(o.workingDir ? { workingDir: o.workingDir } : {}) });
    // Exit now: the forwarded stdin would keep us alive after the command finished (as in pgcharm-sidecar exec).
    process.stdout.write('', () => process.exit(code));
  });

program
  .command('debug-log')
  .description('the controller, agent and sidecar logs merged by time')
  .addOption(modelOption())
  .option('-n, --lines <n>', 'lines of history to show first', int('--lines', 0, 1_000_000), 50)
  .option('--no-tail', 'print and exit instead of following')
  .option('--include <source...>', 'only these units (postgresql/0) or "controller"', [])
  .addOption(new Option('--level <level>', 'lowest level shown').choices(['trace', 'debug', 'info', 'warn', 'error']).default('debug'))
  .action(async (o: { model: string; lines: number; tail: boolean; include: string[]; level: string }) => {
    const { debugLog } = await import('./commands/debug-log.js');
    const levels: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 };
    await debugLog(o.model, { lines: o.lines, follow: o.tail, include: o.include, minLevel: levels[o.level] ?? 20, write: (s) => process.stdout.write(s) });
  });

program
  .command('uri')
  .description('print a libpq connection URI with the operator credentials')
  .addOption(modelOption())
  .addOption(appOption())
  .argument('[target]', 'primary, replicas, or a unit', 'primary')
  .action(async (target: string, o: { model: string; app?: string }) => {
    const [{ uris }, { openModel }] = await Promise.all([import('./commands/uri.js'), import('./commands/context.js')]);
    for (const u of await uris(await openModel(o.model, o.app), target)) process.stdout.write(u + '\n');
  });

program
  .command('psql')
  .description('open psql on the primary (or a unit) as the operator')
  .addOption(modelOption())
  .addOption(appOption())
  .argument('[target]', 'primary, replicas, or a unit', 'primary')
  .argument('[psql-args...]', 'more psql arguments (after --)')
  .action(async (_target: string, _args: string[], o: { model: string; app?: string }, cmd: Command) => {
    // `pgcharm psql -- -c "select 1"`: what follows `--` is psql's, even when no target came before it.
    const [{ psql, psqlInvocation }, { openModel }] = await Promise.all([import('./commands/uri.js'), import('./commands/context.js')]);
    const dd = process.argv.indexOf('--');
    const call = psqlInvocation(cmd.args, dd < 0 ? [] : process.argv.slice(dd + 1));
    exitCode = await psql(await openModel(o.model, o.app), call.target, call.args);
  });

program
  .command('dashboard')
  .description("print the URL of the model's dashboard (its controller serves it); with --port or --prometheus, serve one in the foreground")
  .addOption(modelOption())
  .option('--port <port>', 'serve the page on this loopback port, in the foreground (0: any free port)', int('--port', 0, 65535))
  .option('--prometheus <url>', 'show the alerts this Prometheus fires (its /api/v1/alerts), e.g. http://127.0.0.1:9090')
  .action(async (o: { model: string; port?: number; prometheus?: string }) => {
    const { dashboardCommand } = await import('./commands/dashboard.js');
    await dashboardCommand({ ...o, say: (line) => process.stdout.write(line + '\n') });
  });

program
  .command('prometheus-config')
  .description("print a Prometheus configuration that scrapes a local model's agents, exporters and sidecars (file_sd targets the controller keeps) with pgcharm's alert rules")
  .addOption(modelOption())
  .option('--scrape-interval <duration>', 'how often each target is scraped', '15s')
  .option('--evaluation-interval <duration>', 'how often the alert rules are evaluated', '15s')
  .action(async (o: { model: string; scrapeInterval: string; evaluationInterval: string }) => {
    const { prometheusConfigCommand } = await import('./commands/prometheus-config.js');
    const { config, notes } = await prometheusConfigCommand(o);
    for (const n of notes) process.stderr.write(`note: ${n}\n`);
    process.stdout.write(config);
  });

program
  .command('manifests')
  .description('print the Kubernetes objects for the charm as YAML, for `kubectl apply -f -` (see README: Kubernetes)')
  .option('-n, --units <n>', 'number of units', int('--units', 1, 9), 3)
  .option('--namespace <ns>', 'namespace of every object', 'default')
  .option('--app <name>', 'application name (default: the charm name)')
  .option('--charm <path>', 'charm.yaml', DEFAULT_CHARM)
  .option('--storage-size <quantity>', "each unit's data volume, e.g. 20Gi (default: charm.yaml's minimum-size)")
  .option('--config <key=value...>', 'config settings, checked like `pgcharm config` (postgresql-major=16 picks the image)', [])
  .option('--config-file <path>', 'config settings from a YAML map; secret ones (override-root-password) are rendered into a Secret')
  .option('--service-monitor', 'add a ServiceMonitor (Prometheus Operator) scraping the agents and the postgres exporters')
  .option('--prometheus-rule', "add a PrometheusRule (Prometheus Operator) with pgcharm's alert rules")
  .action(async (o: { units: number; namespace: string; app?: string; charm: string; storageSize?: string; config: string[]; configFile?: string; serviceMonitor?: boolean; prometheusRule?: boolean }) => {
    const [{ settingsFromFile }, { manifestsCommand }] = await Promise.all([import('./commands/config.js'), import('./commands/manifests.js')]);
    const config = [...o.config, ...(o.configFile ? settingsFromFile(o.configFile, '--config-file') : [])];
    process.stdout.write(
      await manifestsCommand({
        charm: o.charm,
        units: o.units,
        namespace: o.namespace,
        config,
        ...(o.app ? { app: o.app } : {}),
        ...(o.storageSize ? { storageSize: o.storageSize } : {}),
        ...(o.serviceMonitor ? { serviceMonitor: true } : {}),
        ...(o.prometheusRule ? { prometheusRule: true } : {}),
      }),
    );
  });

program
  .command('destroy')
  .description('stop the controller and every unit, and delete the model directory')
  .addOption(modelOption())
  .option('--keep-data', 'keep the units\' data directories', false)
  .action(async (o: { model: string; keepData: boolean }) => {
    const { destroy } = await import('./commands/destroy.js');
    await destroy(o.model, { keepData: o.keepData, timeoutMs: 120_000, say });
  });

logFileOptions(program.command('controller'))
  .description('run the local controller of a model in the foreground (deploy starts it in the background)')
  .addOption(modelOption())
  .option('--port <port>', 'API port (default: the previous one, else a free one)', int('--port', 1, 65535))
  .addOption(new Option('--reschedule-delay <ms>', 'delay before a killed unit comes back').argParser(int('--reschedule-delay', 0, 600_000)).hideHelp())
  .action(async (o: { model: string; port?: number; rescheduleDelay?: number } & LogFileFlags) => {
    const logFile = await logFileOf(o);
    const { runController } = await import('./controller/main.js');
    await runController({ model: o.model, ...(o.port ? { port: o.port } : {}), ...(o.rescheduleDelay !== undefined ? { rescheduleDelayMs: o.rescheduleDelay } : {}), ...logFile });
  });

logFileOptions(program.command('agent', { hidden: true }))
  .description("one unit's charm agent (started by the controller, or as the charm container's entrypoint)")
  .requiredOption('--unit <unit>', 'unit name, e.g. postgresql/0')
  .requiredOption('--socket <path>', "the workload container's sidecar socket")
  .option('--kubeconfig <path>', 'kubeconfig (default: in-cluster / $KUBECONFIG)')
  .option('--namespace <ns>', 'namespace (default: the kubeconfig context)')
  .option('--charm <path>', 'charm.yaml', DEFAULT_CHARM)
  .option('--charm-module <path>', 'the charm code', DEFAULT_CHARM_MODULE)
  .action(async (o: { unit: string; socket: string; kubeconfig?: string; namespace?: string; charm: string; charmModule: string } & LogFileFlags) => {
    const logFile = await logFileOf(o);
    // A SIGTERM while the runtime loads must still run the stop hook once the agent is up.
    const early: NodeJS.Signals[] = [];
    const note = (s: NodeJS.Signals) => early.push(s);
    process.on('SIGTERM', note).on('SIGINT', note);
    const { runAgent } = await import('./runtime/main.js');
    process.off('SIGTERM', note).off('SIGINT', note);
    await runAgent({ ...(early[0] ? { stopRequested: early[0] } : {}), ...logFile, unit: o.unit, socket: o.socket, charm: o.charm, charmModule: o.charmModule, ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}), ...(o.namespace ? { namespace: o.namespace } : {}) });
  });

program
  .command('single')
  .description('run one PostgreSQL supervised by the sidecar, no HA (a quick look at the sidecar)')
  .option('--home <dir>', 'state directory', process.env['PGCHARM_HOME'] ?? '/var/tmp/pgcharm')
  .option('--port <port>', 'PostgreSQL port (default: a free port)', int('--port', 1, 65535))
  .option('--major <n>', 'PostgreSQL major version', int('--major', 12, 99), 15)
  .action(async (o: { home: string; port?: number; major: number }) => {
    const { runSingle } = await import('./single.js');
    await runSingle({ ...o, charm: DEFAULT_CHARM });
  });

/** `--params file`: YAML or JSON mapping, turned into key=value args typed by prepareAction. */
async function paramsFromFile(path: string, flag = '--params'): Promise<string[]> {
  const { UserError } = await import('./commands/context.js');
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new UserError(`${flag} ${path}: expected a JSON object of params`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UserError(`${flag} ${path}: expected a JSON object of params`);
  return Object.entries(doc).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
}

program
  .parseAsync(process.argv)
  .then(() => {
    if (exitCode) process.exitCode = exitCode;
  })
  .catch(async (e: unknown) => {
    // A user's mistake is one line, anything else its stack (the command that threw loaded these modules already).
    const expected = await Promise.all([import('./charm-meta/problems.js'), import('./commands/context.js')]).then(
      ([p, c]) => e instanceof p.ProblemsError || e instanceof c.UserError,
      () => false,
    );
    process.stderr.write(`error: ${expected || !(e instanceof Error) ? String(e instanceof Error ? e.message : e) : (e.stack ?? e.message)}\n`);
    process.exit(1);
  });
