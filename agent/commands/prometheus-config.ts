import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from '#yaml';
import { readMetricsAuth } from '../charm/postgresql/secrets.js';
import { objects } from '../runtime/names.js';
import { SCRAPE_JOBS, targetsDir, targetsFile, type ScrapeJob } from '../monitoring/targets.js';
import { deployments, openController, UserError } from './context.js';

/** The repository's alert rules: agent/monitoring/alerts.yaml, found from dist/agent/commands (the CLI) or agent/commands (tests). */
export const ALERT_RULES = ((): string => {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, '..', '..', '..'), resolve(here, '..', '..')].map((root) => resolve(root, 'agent', 'monitoring', 'alerts.yaml'));
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
})();

const DURATION = /^[1-9]\d*(ms|s|m|h)$/;

export interface PrometheusConfigOptions {
  model: string;
  apps: readonly string[];
  scrapeInterval: string;
  evaluationInterval: string;
  /** Per application, the file holding its sidecars' `metrics` identity password (undefined: no sidecar job). */
  sidecarPasswordFile?: (app: string) => string | undefined;
}

/**
 * A Prometheus configuration for a local model (pure): for each application, its agents,
 * exporters and sidecars through the file_sd files the controller keeps, labelled as the alert
 * rules expect (job pgcharm-agent / pgcharm-postgres / pgcharm-sidecar), and the rules.
 */
export function prometheusConfig(o: PrometheusConfigOptions): string {
  for (const [flag, v] of [['--scrape-interval', o.scrapeInterval], ['--evaluation-interval', o.evaluationInterval]] as const) {
    if (!DURATION.test(v)) throw new UserError(`${flag}: expected a duration like 15s or 1m, got ${JSON.stringify(v)}`);
  }
  const scrapeConfigs = [...o.apps].sort().flatMap((app) =>
    (Object.keys(SCRAPE_JOBS) as ScrapeJob[]).flatMap((job) => {
      const password = job === 'pgcharm-sidecar' ? o.sidecarPasswordFile?.(app) : undefined;
      if (job === 'pgcharm-sidecar' && !password) return [];
      return [
        {
          // One scrape config per application and job (each application's sidecars have their own
          // password); the job label is the same for all, as the rules and dashboards expect.
          job_name: `${app}/${job}`,
          metrics_path: SCRAPE_JOBS[job].path,
          ...(password ? { basic_auth: { username: 'metrics', password_file: password } } : {}),
          file_sd_configs: [{ files: [targetsFile(o.model, app, job)] }],
          relabel_configs: [{ target_label: 'job', replacement: job }],
        },
      ];
    }),
  );
  const header = [
    `# Prometheus configuration for the pgcharm model ${o.model} (pgcharm prometheus-config).`,
    '# Its targets are file_sd files the local controller rewrites as units come and go; the',
    '# alert rules are the repository\'s agent/monitoring/alerts.yaml.',
    '',
  ].join('\n');
  return (
    header +
    stringify({
      global: { scrape_interval: o.scrapeInterval, evaluation_interval: o.evaluationInterval },
      rule_files: [ALERT_RULES],
      scrape_configs: scrapeConfigs,
    })
  );
}

/**
 * `pgcharm prometheus-config`: the configuration for every application of a running local model.
 * Each application's sidecar metrics password goes into a file beside the targets (0600, the
 * user running this: start Prometheus as that user), never into the configuration itself.
 */
export async function prometheusConfigCommand(o: { model: string; scrapeInterval: string; evaluationInterval: string }): Promise<{ config: string; notes: string[] }> {
  const { kube } = openController(o.model);
  const apps = [...(await deployments(kube)).keys()];
  if (!apps.length) throw new UserError(`model ${o.model} has a controller but no application: run \`pgcharm deploy --model ${o.model}\``);
  if (!existsSync(ALERT_RULES)) throw new UserError(`the alert rules are missing at ${ALERT_RULES}: run from a complete checkout of pgcharm`);
  const files: Record<string, string> = {};
  const notes: string[] = [];
  for (const app of apps) {
    const auth = await readMetricsAuth(kube, app);
    if (!auth) {
      notes.push(`${app}: its units have not created the sidecar metrics credentials yet (Secret ${objects.metricsAuth(app)}); no sidecar job for it: run this again once \`pgcharm status\` shows the units active`);
      continue;
    }
    const file = join(targetsDir(o.model), `${app}.sidecar-metrics.password`);
    mkdirSync(targetsDir(o.model), { recursive: true, mode: 0o755 });
    writeFileSync(file, auth.password, { mode: 0o600 });
    chmodSync(file, 0o600);
    files[app] = file;
  }
  return { config: prometheusConfig({ model: o.model, apps, scrapeInterval: o.scrapeInterval, evaluationInterval: o.evaluationInterval, sidecarPasswordFile: (app) => files[app] }), notes };
}
