/**
 * The sidecar's native addon (sidecar/native): the few syscalls Node does not offer, plain C
 * against N-API. Loaded once, by whichever part needs it first; without it each caller says
 * what it cannot do and carries on as it can (no reaping, no peer credentials).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAddon {
  /** prctl(PR_SET_CHILD_SUBREAPER): false when refused. */
  setChildSubreaper(): boolean;
  /** waitpid(pid, WNOHANG): the raw wait status once reaped, null while running or not our child. */
  reap(pid: number): number | null;
  /** getsockopt(SO_PEERCRED) of a connected unix socket; throws for anything else. */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
}

/** The addon, or why there is none: `problem` completes "<feature> addon …", `details` are log fields. */
export type NativeAddonLoad = { addon: NativeAddon } | { problem: string; details: Record<string, unknown> };

const ADDON_PATH = join('sidecar', 'native', 'build', 'Release', 'reaper.node');

let loaded: NativeAddonLoad | undefined;

/**
 * The addon sits at <repo>/sidecar/native/build/Release/reaper.node; this module runs from
 * <repo>/sidecar/osutil (vitest, from source) or <repo>/dist/sidecar/osutil (compiled), so
 * look in each ancestor directory rather than at a fixed relative path.
 */
export function loadNativeAddon(): NativeAddonLoad {
  loaded ??= find();
  return loaded;
}

function find(): NativeAddonLoad {
  const here = dirname(fileURLToPath(import.meta.url));
  const tried: string[] = [];
  for (let dir = here; ; dir = dirname(dir)) {
    const candidate = join(dir, ADDON_PATH);
    tried.push(candidate);
    if (existsSync(candidate)) {
      try {
        return { addon: createRequire(import.meta.url)(candidate) as NativeAddon };
      } catch (err) {
        return { problem: 'addon failed to load', details: { err, path: candidate } };
      }
    }
    if (dirname(dir) === dir) break;
  }
  return { problem: 'addon not found (build it with `npm run build:native`)', details: { tried } };
}
