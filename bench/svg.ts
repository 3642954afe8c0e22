/**
 * A failover timeline as a standalone SVG: for each system, every acknowledged write as a dot at
 * (time since the kill, wait since the previous acknowledged write), log scale, with the kill
 * and the first write acknowledged by the new primary marked. No dependencies: plain markup.
 */

export interface Series {
  label: string;
  color: string;
  /** Acknowledgement times (ms since epoch). */
  acks: number[];
  killAt: number;
  /** First write acknowledged by another server than the killed one (ms since epoch). */
  resumedAt?: number;
  lost: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function timelineSvg(title: string, series: Series[], o: { beforeMs?: number; afterMs?: number } = {}): string {
  const W = 960;
  const H = 150 + 190 * series.length;
  const left = 70;
  const right = W - 20;
  const before = o.beforeMs ?? 1000;
  const after = o.afterMs ?? Math.max(3000, ...series.map((s) => (s.resumedAt ?? s.killAt) - s.killAt + 2000));
  const x = (rel: number) => left + ((rel + before) / (before + after)) * (right - left);
  const yMin = 5;
  const yMax = Math.max(1000, ...series.flatMap((s) => gaps(s).map((g) => g.gap)));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${left}" y="44" fill="#555">Each dot is one acknowledged write (a row every 10 ms); its height is the wait since the previous acknowledged write (log scale).</text>`);
  series.forEach((s, i) => {
    const top = 70 + i * 190;
    const bottom = top + 150;
    const y = (v: number) => bottom - ((Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * (bottom - top);
    out.push(`<text x="${left}" y="${top - 6}" font-weight="bold" fill="${s.color}">${esc(s.label)}</text>`);
    out.push(`<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#ccc"/>`);
    for (const v of [10, 100, 1000, 10000, 100000].filter((v) => v <= yMax)) {
      out.push(`<line x1="${left}" x2="${right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#777">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`);
    }
    const step = after + before > 20_000 ? 5000 : 1000;
    for (let t = -Math.floor(before / step) * step; t <= after; t += step) {
      out.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${bottom}" y2="${bottom + 4}" stroke="#999"/><text x="${x(t)}" y="${bottom + 16}" text-anchor="middle" fill="#777">${t / 1000} s</text>`);
    }
    for (const g of gaps(s)) {
      const rel = g.at - s.killAt;
      if (rel < -before || rel > after) continue;
      out.push(`<circle cx="${x(rel).toFixed(1)}" cy="${y(g.gap).toFixed(1)}" r="1.6" fill="${s.color}"/>`);
    }
    out.push(`<line x1="${x(0)}" x2="${x(0)}" y1="${top}" y2="${bottom}" stroke="#c00" stroke-dasharray="4 3"/><text x="${x(0) + 4}" y="${top + 14}" fill="#c00">kill -9</text>`);
    if (s.resumedAt !== undefined) {
      const r = s.resumedAt - s.killAt;
      out.push(`<line x1="${x(r)}" x2="${x(r)}" y1="${top}" y2="${bottom}" stroke="#080" stroke-dasharray="4 3"/>`);
      out.push(`<text x="${x(r) + 4}" y="${top + 30}" fill="#080">new primary acknowledges: +${(r / 1000).toFixed(2)} s; ${s.lost} acknowledged write${s.lost === 1 ? '' : 's'} lost</text>`);
    }
  });
  out.push(`<text x="${left}" y="${H - 12}" fill="#555">time since the kill</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function gaps(s: Series): { at: number; gap: number }[] {
  const out: { at: number; gap: number }[] = [];
  for (let i = 1; i < s.acks.length; i++) out.push({ at: s.acks[i]!, gap: s.acks[i]! - s.acks[i - 1]! });
  return out;
}
