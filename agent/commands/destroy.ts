import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { modelPaths, pidAlive, readControllerInfo } from '../controller/model.js';
import { UserError } from './context.js';

/**
 * `pgcharm destroy`: stops the controller (which stops every unit gracefully: agents run
 * `stop`, sidecars stop Postgres with a fast shutdown) and deletes the model directory. With
 * keepData the units' directories (their Postgres data) stay and everything else goes.
 */
export async function destroy(model: string, o: { keepData: boolean; timeoutMs: number; say: (s: string) => void }): Promise<void> {
  const paths = modelPaths(model);
  if (!existsSync(paths.root)) throw new UserError(`no model at ${model}`);
  if (!existsSync(paths.controllerJson) && !existsSync(paths.units)) {
    throw new UserError(`${model} does not look like a pgcharm model (no controller.json, no units/): not deleting it`);
  }
  const info = readControllerInfo(model);
  if (info && pidAlive(info.pid)) {
    o.say(`stopping the controller (pid ${info.pid}) and its units`);
    process.kill(info.pid, 'SIGTERM');
    const deadline = Date.now() + o.timeoutMs;
    while (pidAlive(info.pid)) {
      if (Date.now() > deadline) throw new UserError(`the controller (pid ${info.pid}) did not stop within ${o.timeoutMs / 1000} s; nothing was deleted`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (o.keepData) {
    for (const entry of readdirSync(paths.root)) if (entry !== 'units') rmSync(join(paths.root, entry), { recursive: true, force: true });
    o.say(`model destroyed; unit data kept in ${paths.units}`);
  } else {
    rmSync(paths.root, { recursive: true, force: true });
    o.say(`model ${model} destroyed`);
  }
}
