/** CPU time this process has used so far (user + system, ms): start-up logs report it, so module-load costs show. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return Math.round((u.user + u.system) / 1000);
}
