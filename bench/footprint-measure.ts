import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { haEvents } from './ha-events.js';
import { LogWatch, topLines, type LogFile } from './log-stats.js';
import { classify, CLK_TCK, cpuTicks, pss, snapshot, type Class, type Proc, type Refine, type Root } from './proc-stats.js';

/**
 * The idle footprint of a running deployment over a window: store requests, CPU and RSS per
 * kind of process, log bytes, SIGHUPs. The same measurement for pgcharm and for Patroni; a
 * Subject says what is what in each.
 */

/** What a table row compares across systems, and which kind of process it is in each. */
export type Role = 'store' | 'ha-agent' | 'sidecar' | 'watchdog' | 'postgres';

export interface Subject {
  name: string;
  roots(): Root[];
  refine: Refine;
  /** Kinds that make up "HA processes" (everything but Postgres). */
  haKinds: string[];
  roles: Partial<Record<Role, string>>;
  logs(): LogFile[];
  /** Log groups not in the total (pgcharm's audit trail, written on request only); reported apart. */
  apart: string[];
  /** Log groups that carry Postgres's own log (where SIGHUPs show). */
  postgresLog(group: string): boolean;
  /** Log groups where the sidecar logs a "push file" line per file written; undefined when nothing logs file writes. */
  pushLog?: (group: string) => boolean;
  /** Starts counting store requests; the function returned gives those made since, by request. */
  countRequests(): Promise<() => Promise<Record<string, number>>>;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const MB = 2 ** 20;

/** Per kind: CPU % of one core (and per process group), RSS. */
export interface KindFigures {
  cpu_pct: number;
  cpu_pct_by: Record<string, number>;
  processes: number;
  rss_max_mb: number;
  rss_total_mb: number;
  /** Long-lived processes (there at the start and the end), the most each held. */
  rss_mb_by?: Record<string, number>;
  /** Proportional set size of all of them at the end (shared memory counted once). */
  pss_total_mb: number;
}

export interface Footprint {
  system: string;
  seconds: number;
  store_requests_per_second: number;
  store_requests_by: Record<string, number>;
  ha_cpu_pct: number;
  kinds: Record<string, KindFigures>;
  roles: Partial<Record<Role, string>>;
  log_bytes_per_minute: Record<string, number>;
  log_bytes_per_minute_total: number;
  log_bytes_per_minute_apart: Record<string, number>;
  log_top_lines_per_minute: Record<string, Record<string, number>>;
  sighups_per_minute: number;
  /** pgcharm's HA machinery acting in the window: fences, promotions, step-downs (see ha-events.ts). */
  ha_events: { fences: number; failovers: number; step_downs: number; fence_lines: string[] };
  /** null when nothing logs file writes (see push_files_note). */
  push_files_per_minute: Record<string, number> | null;
  config_file_writes_per_minute: number | null;
  push_files_note?: string;
}

/** What the sidecar pushes that is not a config file: the primary's fence deadline, at every lease renewal. */
const NOT_CONFIG = new Set(['fence-deadline']);

export async function measure(s: Subject, seconds: number, sampleMs = 5000): Promise<Footprint> {
  const logs = new LogWatch(() => s.logs());
  const rssMax = new Map<number, number>();
  const seen = new Map<number, { cls: Class; comm: string; start: number; samples: number }>();
  let last: { procs: Map<number, Proc>; cls: Map<number, Class> } | undefined;
  const sample = () => {
    const procs = snapshot();
    const cls = classify(procs, s.roots(), s.refine);
    for (const [pid, c] of cls) {
      const p = procs.get(pid)!;
      rssMax.set(pid, Math.max(rssMax.get(pid) ?? 0, p.rss));
      const prev = seen.get(pid);
      seen.set(pid, { cls: c, comm: p.comm, start: p.start, samples: prev && prev.start === p.start ? prev.samples + 1 : 1 });
    }
    logs.sample();
    last = { procs, cls };
    return procs;
  };

  const stopCounting = await s.countRequests();
  const t0 = Date.now();
  const first = sample();
  const firstPids = new Set(last!.cls.keys());
  for (const end = t0 + seconds * 1000; Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, Math.min(sampleMs, end - Date.now())));
    sample();
  }
  const final = last!;
  const elapsed = (Date.now() - t0) / 1000;
  const requests = await stopCounting();

  const kinds: Record<string, KindFigures> = {};
  const kind = (k: string) => (kinds[k] ??= { cpu_pct: 0, cpu_pct_by: {}, processes: 0, rss_max_mb: 0, rss_total_mb: 0, pss_total_mb: 0 });
  const pct = (ticks: number) => (ticks / CLK_TCK / elapsed) * 100;
  for (const [pid, ticks] of cpuTicks(first, final.procs)) {
    const c = final.cls.get(pid);
    if (!c) continue;
    const f = kind(c.kind);
    f.cpu_pct += pct(ticks);
    f.cpu_pct_by[c.label] = (f.cpu_pct_by[c.label] ?? 0) + pct(ticks);
  }
  for (const [pid, c] of final.cls) {
    const f = kind(c.kind);
    f.processes++;
    f.rss_total_mb += final.procs.get(pid)!.rss / MB;
    f.pss_total_mb += pss(pid) / MB;
  }
  for (const [pid, info] of seen) {
    const f = kind(info.cls.kind);
    f.rss_max_mb = Math.max(f.rss_max_mb, rssMax.get(pid)! / MB);
    if (!firstPids.has(pid) || !final.cls.has(pid) || info.cls.kind === 'postgres') continue;
    // Long-lived processes by name (Postgres's are many and alike: its totals say more).
    const key = s.roots().some((r) => r.pid === pid) ? info.cls.label : `${info.cls.label} ${info.comm}`;
    f.rss_mb_by ??= {};
    f.rss_mb_by[key] = round(Math.max(f.rss_mb_by[key] ?? 0, rssMax.get(pid)! / MB), 1);
  }
  for (const f of Object.values(kinds)) {
    f.cpu_pct = round(f.cpu_pct);
    f.cpu_pct_by = Object.fromEntries(Object.entries(f.cpu_pct_by).map(([k, v]) => [k, round(v)]));
    f.rss_max_mb = round(f.rss_max_mb, 1);
    f.rss_total_mb = round(f.rss_total_mb, 1);
    f.pss_total_mb = round(f.pss_total_mb, 1);
  }

  const minutes = elapsed / 60;
  const bytes = logs.bytes();
  const text = logs.text();
  const perMin = (x: number) => Math.round(x / minutes);
  const inTotal = Object.entries(bytes).filter(([g]) => !s.apart.includes(g));
  const sighups = Object.entries(text).filter(([g]) => s.postgresLog(g)).reduce((n, [, t]) => n + (t.match(/received SIGHUP/g)?.length ?? 0), 0);
  const ha = haEvents(text);
  const push = s.pushLog ? pushes(text, s.logs(), s.pushLog) : undefined;
  const fig: Footprint = {
    system: s.name,
    seconds: round(elapsed, 1),
    store_requests_per_second: round(Object.values(requests).reduce((a, b) => a + b, 0) / elapsed),
    store_requests_by: Object.fromEntries(Object.entries(requests).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round(v / elapsed, 3)])),
    ha_cpu_pct: round(s.haKinds.reduce((a, k) => a + (kinds[k]?.cpu_pct ?? 0), 0)),
    kinds,
    roles: s.roles,
    log_bytes_per_minute: Object.fromEntries(Object.entries(bytes).sort().map(([g, b]) => [g, perMin(b)])),
    log_bytes_per_minute_total: perMin(inTotal.reduce((a, [, b]) => a + b, 0)),
    log_bytes_per_minute_apart: Object.fromEntries(s.apart.map((g) => [g, perMin(bytes[g] ?? 0)])),
    log_top_lines_per_minute: Object.fromEntries(
      Object.entries(text)
        .filter(([g]) => !s.apart.includes(g))
        .map(([g, t]) => [g, Object.fromEntries(topLines(t, 4).map(([k, n]) => [k, round(n / minutes, 1)]))]),
    ),
    sighups_per_minute: round(sighups / minutes),
    ha_events: { fences: ha.fences, failovers: ha.promotions, step_downs: ha.step_downs, fence_lines: ha.fence_lines },
    push_files_per_minute: push ? Object.fromEntries(Object.entries(push.byFile).map(([f, n]) => [f, round(n / minutes, 1)])) : null,
    config_file_writes_per_minute: push?.logged ? round(Object.entries(push.byFile).filter(([f]) => !NOT_CONFIG.has(f)).reduce((a, [, n]) => a + n, 0) / minutes) : null,
  };
  if (!s.pushLog) fig.push_files_note = `${s.name} does not log the files it writes`;
  else if (!push?.logged) fig.push_files_note = 'the sidecar logs no "push file" line (file writes at debug level?): config file writes unknown';
  return fig;
}

/**
 * "push file" lines by file name. `logged`: whether the sidecar logs them at all, i.e. some
 * line exists in the window or earlier in its log (at info level it logs each file written).
 */
function pushes(text: Record<string, string>, files: LogFile[], pushLog: (group: string) => boolean): { byFile: Record<string, number>; logged: boolean } {
  const byFile: Record<string, number> = {};
  for (const [g, t] of Object.entries(text)) {
    if (!pushLog(g)) continue;
    for (const l of t.split('\n')) {
      if (!l.includes('"push file"')) continue;
      let o: { msg?: string; path?: string };
      try {
        o = JSON.parse(l) as typeof o;
      } catch {
        continue; // cut at the window's end
      }
      if (o.msg === 'push file' && o.path) byFile[basename(o.path)] = (byFile[basename(o.path)] ?? 0) + 1;
    }
  }
  const logged = Object.keys(byFile).length > 0 || files.some((f) => f.live && pushLog(f.group) && existsSync(f.path) && readFileSync(f.path, 'utf8').includes('"push file"'));
  return { byFile, logged };
}
