// The dashboard page: Preact with htm (templates without a JSX build step) for the view, uPlot
// for the time series. It listens to /api/stream (server-sent events) and keeps the last five
// minutes of samples itself; the server keeps no history.
import { html, render } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { AppView, Member, Snapshot, TimelineEvent } from '../source.js';

const KEEP = 300; // samples (one a second)

interface Series {
  t: number[];
  commits: (number | null)[];
  lag: Record<string, (number | null)[]>;
}

const history = new Map<string, Series>();

function record(s: Snapshot): void {
  const t = Date.parse(s.time) / 1000;
  for (const a of s.apps) {
    let h = history.get(a.app);
    if (!h) history.set(a.app, (h = { t: [], commits: [], lag: {} }));
    h.t.push(t);
    h.commits.push(a.commitsPerSec ?? null);
    const standbys = a.members.filter((m) => m.role !== 'leader');
    for (const m of standbys) h.lag[m.name] ??= new Array<number | null>(h.t.length - 1).fill(null);
    for (const [name, values] of Object.entries(h.lag)) values.push(standbys.find((m) => m.name === name)?.lag ?? null);
    if (h.t.length > KEEP) {
      h.t.shift();
      h.commits.shift();
      for (const v of Object.values(h.lag)) v.shift();
    }
  }
}

const bytes = (n: number | undefined): string => {
  if (n === undefined) return '';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
};

const roleLabel = (m: Member): string => (m.role === 'leader' ? 'primary' : m.role);

function Chart(props: { title: string; testid: string; t: number[]; series: Record<string, (number | null)[]>; unit: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const names = Object.keys(props.series).sort();
  const key = names.join(',');
  useEffect(() => {
    if (!box.current) return;
    const colours = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4d7c0f'];
    plot.current?.destroy();
    plot.current = new uPlot(
      {
        width: Math.max(300, box.current.clientWidth),
        height: 180,
        legend: { show: true },
        scales: { x: { time: true } },
        axes: [{}, { label: props.unit, size: 70 }],
        series: [{}, ...names.map((n, i) => ({ label: n, stroke: colours[i % colours.length]!, width: 2, spanGaps: false }))],
      },
      [props.t, ...names.map((n) => props.series[n]!)],
      box.current,
    );
    return () => plot.current?.destroy();
  }, [key]);
  useEffect(() => {
    plot.current?.setData([props.t, ...names.map((n) => props.series[n]!)]);
  });
  return html`<div class="chart" data-testid=${props.testid}><h3>${props.title}</h3><div ref=${box}></div></div>`;
}

function AppPanel({ a }: { a: AppView }) {
  const h = history.get(a.app) ?? { t: [], commits: [], lag: {} };
  const primary = a.members.find((m) => m.role === 'leader');
  return html`
    <section class="app" data-testid="app" data-app=${a.app}>
      <h2>${a.app} <span class="muted">primary:</span> <span data-testid="primary">${primary?.name ?? 'none'}</span></h2>
      <table class="members">
        <thead><tr><th>unit</th><th>role</th><th>state</th><th>timeline</th><th>lag</th><th>address</th></tr></thead>
        <tbody>
          ${a.members.map(
            (m) => html`<tr data-testid="member" data-unit=${m.name} data-role=${roleLabel(m)} class=${`role-${roleLabel(m)} state-${m.state}`}>
              <td>${m.name}</td><td>${roleLabel(m)}</td><td>${m.state}</td><td>${m.timeline ?? ''}</td><td>${m.role === 'leader' ? '' : bytes(m.lag)}</td><td>${m.host ? `${m.host}:${m.port}` : ''}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      <p class="muted small">as ${a.from === 'no unit API answered' ? 'no unit could say (every unit API is silent)' : `${a.from} sees it`}</p>
      <div class="charts">
        <${Chart} title="commits/s (primary)" testid="chart-commits" unit="commits/s" t=${h.t} series=${{ commits: h.commits }} />
        <${Chart} title="replication lag per standby" testid="chart-lag" unit="bytes" t=${h.t} series=${h.lag} />
      </div>
    </section>`;
}

function Timeline({ events }: { events: TimelineEvent[] }) {
  return html`
    <section data-testid="timeline">
      <h2>Timeline</h2>
      ${events.length === 0 ? html`<p class="muted">no events in the last hour</p>` : null}
      <ol class="events">
        ${events.map(
          (e) => html`<li data-testid="event" data-reason=${e.reason} class=${e.type === 'Warning' ? 'warning' : ''}>
            <time>${new Date(e.time).toLocaleTimeString()}</time> <b>${e.reason}</b> <span class="unit">${e.unit}</span> ${e.message}
          </li>`,
        )}
      </ol>
    </section>`;
}

function Alerts({ s }: { s: Snapshot }) {
  if (!s.prometheus) {
    return html`<section data-testid="alerts"><h2>Alerts</h2><p class="muted">No Prometheus given: <code>pgcharm prometheus-config</code> sets one up; then <code>pgcharm dashboard --prometheus http://127.0.0.1:9090</code>.</p></section>`;
  }
  const firing = (s.alerts ?? []).filter((a) => a.state === 'firing' || a.state === 'pending');
  return html`
    <section data-testid="alerts">
      <h2>Alerts <span class="muted small">${s.prometheus}</span></h2>
      ${s.alertsError ? html`<p class="warning">Prometheus did not answer: ${s.alertsError}</p>` : null}
      ${!s.alertsError && firing.length === 0 ? html`<p class="ok">none firing</p>` : null}
      <ul>
        ${firing.map((a) => html`<li data-testid="alert" class=${a.severity}><b>${a.name}</b> (${a.state}, ${a.severity}) ${a.summary}</li>`)}
      </ul>
    </section>`;
}

function App() {
  const [s, setS] = useState<Snapshot | undefined>(undefined);
  const [live, setLive] = useState(false);
  useEffect(() => {
    const es = new EventSource('/api/stream');
    es.onopen = () => setLive(true);
    es.onerror = () => setLive(false);
    es.onmessage = (m: MessageEvent<string>) => {
      const snap = JSON.parse(m.data) as Snapshot;
      record(snap);
      setS(snap);
    };
    return () => es.close();
  }, []);
  if (!s) return html`<p class="muted">connecting…</p>`;
  return html`
    <header>
      <h1>pgcharm</h1>
      <span class="muted">model ${s.model}</span>
      <span class=${live ? 'ok' : 'warning'} data-testid="live">${live ? 'live' : 'reconnecting'}</span>
      <span class="muted small">updated ${new Date(s.time).toLocaleTimeString()}</span>
    </header>
    ${s.apps.length === 0 ? html`<p class="muted">no application in this model yet</p>` : s.apps.map((a) => html`<${AppPanel} a=${a} key=${a.app} />`)}
    <div class="columns"><${Alerts} s=${s} /><${Timeline} events=${s.events} /></div>`;
}

render(html`<${App} />`, document.getElementById('root')!);
