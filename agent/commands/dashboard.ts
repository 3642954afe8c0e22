import { pino } from 'pino';
import { openController, UserError } from './context.js';

/**
 * `pgcharm dashboard`: the controller serves every model's dashboard; this prints where (after
 * checking it answers). With --port or --prometheus it serves one itself, in the foreground,
 * until interrupted: on a port of the user's choice, or with a Prometheus's alerts.
 */
export async function dashboardCommand(o: { model: string; port?: number | undefined; prometheus?: string | undefined; say(line: string): void }): Promise<void> {
  const { controller, kube } = openController(o.model);
  if (o.prometheus !== undefined && !/^https?:\/\/[^\s/]+/.test(o.prometheus)) throw new UserError(`--prometheus: expected a URL like http://127.0.0.1:9090, got ${JSON.stringify(o.prometheus)}`);
  if (o.port === undefined && o.prometheus === undefined) {
    if (!controller.dashboard) throw new UserError(`the controller of model ${o.model} serves no dashboard (it started before pgcharm had one): pgcharm dashboard --port 0 serves one`);
    const r = await fetch(controller.dashboard, { method: 'HEAD', signal: AbortSignal.timeout(3000) }).catch((e: unknown) => e as Error);
    if (r instanceof Error || !r.ok) throw new UserError(`the dashboard at ${controller.dashboard} does not answer (${r instanceof Error ? r.message : `HTTP ${r.status}`})`);
    o.say(controller.dashboard);
    return;
  }
  const { Dashboard } = await import('../dashboard/server.js');
  const d = new Dashboard({ kube, model: o.model, log: pino({ level: 'warn' }), prometheus: o.prometheus });
  const url = await d.listen('127.0.0.1', o.port ?? 0).catch((e: unknown) => {
    throw new UserError(`--port: cannot listen on 127.0.0.1:${o.port ?? 0}: ${e instanceof Error ? e.message : String(e)}`);
  });
  o.say(`${url}   (Ctrl-C stops it)`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await d.close();
}
