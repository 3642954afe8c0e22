#!/usr/bin/env node
import { writeFileSync, mkdirSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { FAULTS } from './faults.js';
import { runChaos } from './run.js';

/**
 * `npm run chaos -- --cycles N [--seed S] [--faults a,b]`: JSON on stdout (and in
 * .chaos/latest.json), progress on stderr; exit 1 at the first violation, with the seed that
 * replays the same faults and where the unit logs were kept.
 */
const positive = (name: string, max: number) => (v: string) => {
  if (!/^[0-9]+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new InvalidArgumentError(`${name} must be an integer from 1 to ${max}`);
  return Number(v);
};

const program = new Command('chaos')
  .description('bounded chaos on a local 3-unit pgcharm deployment under a continuous writer')
  .option('--cycles <n>', 'how many faults to inject', positive('--cycles', 10_000), 20)
  .option('--seed <n>', 'PRNG seed (default: random; printed, and replays the same faults)', (v: string) => {
    if (!/^[0-9]+$/.test(v) || Number(v) > 0xffffffff) throw new InvalidArgumentError('--seed must be an integer from 0 to 4294967295');
    return Number(v);
  })
  .option('--faults <names>', `only these faults, comma-separated: ${FAULTS.map((f) => f.name).join(', ')}`, (v: string) => {
    const names = v.split(',').map((x) => x.trim()).filter(Boolean);
    const bad = names.filter((n) => !FAULTS.some((f) => f.name === n));
    if (!names.length || bad.length) throw new InvalidArgumentError(`unknown fault ${bad.join(', ') || '(none given)'}; faults are ${FAULTS.map((f) => f.name).join(', ')}`);
    return names;
  })
  .option('--heal-bound <seconds>', 'how long every unit may take to stream again after a fault', positive('--heal-bound', 3600), 120)
  .option('--out <dir>', 'where results and the logs of a failed run go', '.chaos')
  .action(async (o: { cycles: number; seed?: number; faults?: string[]; healBound: number; out: string }) => {
    const seed = o.seed ?? Math.floor(Math.random() * 0xffffffff);
    process.stderr.write(`chaos: ${o.cycles} cycles, seed ${seed}\n`);
    const r = await runChaos({ cycles: o.cycles, seed, ...(o.faults ? { faults: o.faults } : {}), healBoundMs: o.healBound * 1000, outDir: o.out, log: (s) => process.stderr.write(`${s}\n`) });
    const json = JSON.stringify(r, null, 2) + '\n';
    process.stdout.write(json);
    mkdirSync(o.out, { recursive: true });
    writeFileSync(`${o.out}/latest.json`, json);
    if (r.result === 'fail') {
      process.stderr.write(`chaos FAILED in cycle ${r.violation!.cycle} (${r.violation!.fault}): ${r.violation!.what}\nreproduce: ${r.reproduce}\nlogs: ${r.logs}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`chaos passed: ${r.cycles.length} cycles, ${r.acknowledged_writes} writes acknowledged, ${r.acknowledged_writes_lost} lost, ${r.double_primaries} double primaries\n`);
    }
  });

program.parseAsync().catch((e: unknown) => {
  process.stderr.write(`chaos failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
