import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import pg from 'pg';
import { prometheusConfigCommand } from '../agent/commands/prometheus-config.js';
import { Dashboard } from '../agent/dashboard/server.js';
import { modelPaths } from '../agent/controller/model.js';
import { cmdline, pidsWithEnv } from '../agent/procs.js';
import { connect } from '../agent/runtime/kube.js';
import { storeRequests } from '../agent/runtime/metrics.js';
import { targetsFile, type ScrapeJob } from '../agent/monitoring/targets.js';
import { PgcharmCluster } from './pgcharm.js';
import { CLK_TCK, pss, readProc, snapshot } from './proc-stats.js';
import { summary } from './stats.js';

/**
 * Issue 15, "Observability": what monitoring costs on an idle 3-unit deployment. Each endpoint
 * (the agent's /metrics, the postgres exporter's, the sidecar's /v1/metrics) is scraped
 * `scrapes` times one after the other: CPU of the process that serves it, and of the unit's
 * Postgres processes that answer it, per scrape; its size. The exporters' memory (and their
 * Postgres connections'). The dashboard's cost while a page listens: its store requests per
 * second (the API client's count; its watches are long-lived requests, listed apart), its own
 * CPU, and the agents' CPU for the /cluster it asks each second.
 */

export interface EndpointCost {
  scrapes: number;
  cpu_ms_per_scrape_server: number;
  cpu_ms_per_scrape_postgres: number;
  latency_ms: ReturnType<typeof summary>;
  bytes: number;
  series: number;
}

export interface MonitoringResult {
  endpoints: Record<'agent' | 'exporter' | 'sidecar', EndpointCost>;
  exporter: { rss_mb: number[]; pss_mb: number[]; connection_backend_pss_mb: number[] };
  dashboard: { seconds: number; snapshots: number; store_requests_per_second: number; store_requests: Record<string, number>; watches: number; cpu_ms_per_second_dashboard: number; cpu_ms_per_second_agents: number; cpu_ms_per_second_agents_without_page: number; cpu_ms_per_second_postgres: number; cpu_ms_per_second_postgres_without_page: number };
}

const ticksOf = (pids: number[]) => pids.reduce((s, pid) => {
  const p = readProc(pid);
  return s + (p ? p.utime + p.stime + p.cutime + p.cstime : 0);
}, 0);

function unitPids(model: string, pod: string): { agent: number; sidecar: number; exporter: number; postgres: () => number[] } {
  const all = pidsWithEnv('PGCHARM_LOCAL_UNIT', `${model}#${pod}`);
  const find = (re: RegExp) => all.filter((p) => re.test(cmdline(p)[0] ?? ''));
  const pidFile = (which: string) => Number(readFileSync(join(modelPaths(model).unit(pod), `${which}.pid`), 'utf8'));
  const exporter = find(/prometheus-postgres-exporter$/)[0];
  if (!exporter) throw new Error(`${pod}: no postgres exporter running`);
  // Postgres's processes: the postmaster and its children (their titles replace argv[0]).
  // The postmaster and its children: backends overwrite their environment with their process
  // title, so the unit's marker finds none of them.
  const postgres = () => {
    const pm = Number(readFileSync(join(modelPaths(model).unit(pod), 'storage', 'pgdata', 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
    return [...snapshot().values()].filter((p) => p.pid === pm || p.ppid === pm).map((p) => p.pid);
  };
  return { agent: pidFile('agent'), sidecar: pidFile('sidecar'), exporter, postgres };
}

/** Scrapes 300 ms apart: the agent's gauges reuse a Postgres reading for 250 ms, and a real scrape interval is seconds. */
const GAP_MS = 300;

async function scrapeCost(url: string, auth: string | undefined, server: number, postgresPids: () => number[], n: number): Promise<EndpointCost> {
  const get = async () => {
    const t = performance.now();
    const r = await fetch(url, auth ? { headers: { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } } : {});
    const text = await r.text();
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return { ms: performance.now() - t, text };
  };
  for (let i = 0; i < 3; i++) await get(); // warm: a first scrape loads code and opens connections
  // Postgres's processes now: the backends the warm-up opened (the exporter's, the agent's) included.
  const postgres = postgresPids();
  // What the server and Postgres spend anyway (the agent's HA loop, checkpoints) over as long
  // as the scrapes take, then with the scrapes: the difference is theirs.
  const window = async (scraping: boolean) => {
    const s0 = ticksOf([server]);
    const p0 = ticksOf(postgres);
    for (let i = 0; i < n; i++) {
      if (scraping) {
        const r = await get();
        lat.push(Math.round(r.ms * 10) / 10);
        last = r.text;
      }
      await new Promise((res) => setTimeout(res, GAP_MS));
    }
    return { server: ticksOf([server]) - s0, postgres: ticksOf(postgres) - p0 };
  };
  const lat: number[] = [];
  let last = '';
  const quiet = await window(false);
  const busy = await window(true);
  const per = (ticks: number) => Math.max(0, Math.round(((ticks * 1000) / CLK_TCK / n) * 100) / 100);
  return {
    scrapes: n,
    cpu_ms_per_scrape_server: per(busy.server - quiet.server),
    cpu_ms_per_scrape_postgres: per(busy.postgres - quiet.postgres),
    latency_ms: summary(lat),
    bytes: Buffer.byteLength(last),
    series: last.split('\n').filter((l) => l && !l.startsWith('#')).length,
  };
}

export async function benchMonitoring(o: { scrapes: number; seconds: number; log: (s: string) => void }): Promise<MonitoringResult> {
  const c = new PgcharmCluster(3);
  try {
    o.log('deploying 3 units');
    await c.start();
    await c.deployed();
    const model = c.model;
    const app = 'postgresql';
    const targets = (job: ScrapeJob) => (JSON.parse(readFileSync(targetsFile(model, app, job), 'utf8')) as { targets: string[]; labels: { unit: string } }[]).map((g) => ({ at: g.targets[0]!, unit: g.labels.unit }));
    // Writes the sidecars' password file beside the targets.
    await prometheusConfigCommand({ model, scrapeInterval: '15s', evaluationInterval: '15s' });
    const password = readFileSync(join(model, 'monitoring', `${app}.sidecar-metrics.password`), 'utf8');
    // Every exporter up (set up in an event after the units settled).
    for (const deadline = Date.now() + 60_000; ; ) {
      const ok = await Promise.all(targets('pgcharm-postgres').map((t) => fetch(`http://${t.at}/metrics`).then((r) => r.ok, () => false)));
      if (ok.length === 3 && ok.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error('the exporters did not all answer within 60 s');
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, 5000)); // settle
    const unit = targets('pgcharm-agent')[0]!.unit;
    const pod = unit.replace('/', '-');
    const pids = unitPids(model, pod);
    const at = (job: ScrapeJob) => targets(job).find((t) => t.unit === unit)!.at;
    o.log(`scraping each endpoint of ${unit} ${o.scrapes} times`);
    const endpoints = {
      agent: await scrapeCost(`http://${at('pgcharm-agent')}/metrics`, undefined, pids.agent, pids.postgres, o.scrapes),
      exporter: await scrapeCost(`http://${at('pgcharm-postgres')}/metrics`, undefined, pids.exporter, pids.postgres, o.scrapes),
      sidecar: await scrapeCost(`http://${at('pgcharm-sidecar')}/v1/metrics`, `metrics:${password}`, pids.sidecar, pids.postgres, o.scrapes),
    };

    // The exporters' memory, and that of the Postgres backend each keeps open.
    const pw = await c.credentials();
    const exporter = { rss_mb: [] as number[], pss_mb: [] as number[], connection_backend_pss_mb: [] as number[] };
    for (const t of targets('pgcharm-agent')) {
      const p = unitPids(model, t.unit.replace('/', '-'));
      exporter.rss_mb.push(Math.round(((readProc(p.exporter)?.rss ?? 0) / 2 ** 20) * 10) / 10);
      exporter.pss_mb.push(Math.round((pss(p.exporter) / 2 ** 20) * 10) / 10);
      const db = new pg.Client({ host: '127.0.0.1', port: c.portOf(t.unit), user: pw.user, password: pw.password, database: 'postgres' });
      await db.connect();
      const backends = (await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE usename = 'monitoring'")).rows.map((r) => r.pid);
      await db.end();
      exporter.connection_backend_pss_mb.push(Math.round((backends.reduce((s, b) => s + pss(b), 0) / 2 ** 20) * 10) / 10);
    }

    // The dashboard, in this process (its store requests are counted by the API client's Proxy).
    o.log(`the dashboard with a page listening for ${o.seconds} s`);
    const kube = connect({ kubeconfig: modelPaths(model).kubeconfig });
    const d = new Dashboard({ kube, model, log: pino({ level: 'warn' }) });
    const url = await d.listen('127.0.0.1', 0);
    const counts = async () => Object.fromEntries((await storeRequests.get()).values.map((v) => [String(v.labels['operation']), v.value]));
    await new Promise((r) => setTimeout(r, 2000)); // its initial lists and watches
    const before = await counts();
    const agents = targets('pgcharm-agent').map((t) => unitPids(model, t.unit.replace('/', '-')).agent);
    const postgresAll = () => targets('pgcharm-agent').flatMap((t) => unitPids(model, t.unit.replace('/', '-')).postgres());
    // The agents' and Postgres's own idle CPU first, over the same length: the page's cost is what it adds.
    const b0 = ticksOf(agents);
    const bp = postgresAll();
    const bp0 = ticksOf(bp);
    const tb = Date.now();
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    const tbs = (Date.now() - tb) / 1000;
    const baseline = ((ticksOf(agents) - b0) * 1000) / CLK_TCK / tbs;
    const baselinePg = ((ticksOf(bp) - bp0) * 1000) / CLK_TCK / tbs;
    const a0 = ticksOf(agents);
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    const ac = new AbortController();
    let snapshots = 0;
    const reading = (async () => {
      const r = await fetch(`${url}api/stream`, { signal: ac.signal });
      const reader = r.body!.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        snapshots += (Buffer.from(value).toString().match(/^data: /gm) ?? []).length;
      }
    })().catch(() => undefined);
    // Postgres's processes once the page's connections are open (the dashboard's own, /cluster's).
    await new Promise((r) => setTimeout(r, 2000));
    const pp = postgresAll();
    const pp0 = ticksOf(pp);
    const tp = Date.now();
    await new Promise((r) => setTimeout(r, o.seconds * 1000 - 2000));
    const pgPage = ((ticksOf(pp) - pp0) * 1000) / CLK_TCK / ((Date.now() - tp) / 1000);
    ac.abort();
    await reading;
    const secs = (Date.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const after = await counts();
    await d.close();
    const delta: Record<string, number> = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)] as const).filter(([, v]) => v > 0));
    const total = Object.values(delta).reduce((s, v) => s + v, 0);
    return {
      endpoints,
      exporter,
      dashboard: {
        seconds: Math.round(secs),
        snapshots,
        store_requests_per_second: Math.round((total / secs) * 100) / 100,
        store_requests: delta,
        // deployments, events, and one per application's unit bags
        watches: 3,
        cpu_ms_per_second_dashboard: Math.round(((cpu.user + cpu.system) / 1000 / secs) * 10) / 10,
        cpu_ms_per_second_agents: Math.round((((ticksOf(agents) - a0) * 1000) / CLK_TCK / secs) * 10) / 10,
        cpu_ms_per_second_agents_without_page: Math.round(baseline * 10) / 10,
        // Short-lived backends (/cluster's logins) are counted when their parent reaps them (cutime).
        cpu_ms_per_second_postgres: Math.round(pgPage * 10) / 10,
        cpu_ms_per_second_postgres_without_page: Math.round(baselinePg * 10) / 10,
      },
    };
  } finally {
    await c.destroy().catch(() => undefined);
  }
}
