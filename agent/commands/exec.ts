import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../sidecar/cli.js';
import { modelPaths } from '../controller/model.js';
import { resolveUnit, UserError, type ModelContext } from './context.js';

/** `pgcharm exec UNIT [-t] -- CMD...`: runs CMD in the unit's workload container, through its sidecar. */
export async function execCommand(ctx: ModelContext, unit: string, cmd: string[], o: { terminal: boolean; user?: string; workingDir?: string }): Promise<number> {
  if (cmd.length === 0) throw new UserError('nothing to run: pgcharm exec UNIT -- CMD [ARGS...]');
  const u = await resolveUnit(ctx, unit);
  const socket = join(modelPaths(ctx.model).unit(u.pod), 'pebble', '.pebble.socket');
  if (!existsSync(socket)) throw new UserError(`${u.unit} has no running sidecar right now (socket ${socket} is missing)`);
  const args = ['exec', ...(o.terminal ? ['-t'] : []), ...(o.user ? ['--user', o.user] : []), ...(o.workingDir ? ['-w', o.workingDir] : []), '--', ...cmd];
  return runCli(args, { env: { ...process.env, PEBBLE_SOCKET: socket } });
}
