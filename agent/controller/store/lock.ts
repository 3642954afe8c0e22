import fs from 'node:fs';
import path from 'node:path';

/**
 * One server per store directory: two writers appending to the same journal would corrupt
 * it. The lock file holds the owner's pid; a lock left by a dead process (kill -9) is taken over.
 */
const heldHere = new Set<string>();

export function lockStore(dir: string): () => void {
  const file = path.join(dir, 'lock');
  if (heldHere.has(file)) throw new Error(`the store in ${dir} is already open in this process`);
  let owner: number | undefined;
  try {
    owner = Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    /* no lock yet */
  }
  if (owner && owner !== process.pid && alive(owner)) {
    throw new Error(`the store in ${dir} is in use by process ${owner} (delete ${file} if that is not a pgcharm controller)`);
  }
  fs.writeFileSync(file, `${process.pid}\n`, { mode: 0o600 });
  heldHere.add(file);
  return () => {
    heldHere.delete(file);
    try {
      if (Number(fs.readFileSync(file, 'utf8').trim()) === process.pid) fs.rmSync(file);
    } catch {
      /* already gone */
    }
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
