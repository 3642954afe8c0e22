import { lineKey } from './log-stats.js';

/**
 * What pgcharm's HA machinery did, read from the logs of a window (LogWatch.text()): the fence
 * watchdog's "fenced:" lines (in the sidecar logs, prefixed with the service's name), the agents'
 * "ha" decisions to promote or step down, and their warnings by message.
 */
export function haEvents(text: Record<string, string>) {
  const out = { fences: 0, fence_lines: [] as string[], promotions: 0, step_downs: 0, warnings: {} as Record<string, number> };
  for (const [group, t] of Object.entries(text)) {
    for (const l of t.split('\n')) {
      // The sidecar prefixes a service's output with its name: "<time> [pgcharm-fence] fenced: ...".
      if (group.endsWith('.sidecar.log') && /^\S+ \[[^\]]+\] fenced:/.test(l)) {
        out.fences++;
        if (out.fence_lines.length < 5) out.fence_lines.push(`${group}: ${l}`);
      }
      if (!group.endsWith('.agent.log') || !l.startsWith('{')) continue;
      let e: { level?: number; msg?: string; decision?: string };
      try {
        e = JSON.parse(l) as typeof e;
      } catch {
        continue;
      }
      if (e.msg === 'ha' && e.decision === 'promoted') out.promotions++;
      if (e.msg === 'ha' && e.decision === 'step down') out.step_downs++;
      if ((e.level ?? 0) >= 40) {
        const k = lineKey(l);
        out.warnings[k] = (out.warnings[k] ?? 0) + 1;
      }
    }
  }
  return out;
}

