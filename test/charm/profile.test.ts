import { describe, expect, test } from 'vitest';
import { maxWalSize, parseResources, POSTGRES_DEFAULTS, profileParams, slotWalKeepSize, syncfsReportsErrors, unitMemory, type UnitResources } from '../../agent/charm/postgresql/profile.js';
import { layout, pgParams } from '../../agent/charm/postgresql/render.js';

const MB = 1024 ** 2;
const GB = 1024 ** 3;

describe('unit memory', () => {
  test.each<[string, Pick<UnitResources, 'cgroupLimit' | 'machineMemory'>, number, number]>([
    ['a pod with a memory limit: the limit', { cgroupLimit: 2 * GB, machineMemory: 64 * GB }, 1, 2 * GB],
    ['no limit: the machine', { machineMemory: 16 * GB }, 1, 16 * GB],
    ['a limit above the machine (cgroup v1 page-rounded max): the machine', { cgroupLimit: 128 * GB, machineMemory: 16 * GB }, 1, 16 * GB],
    ['locally: a quarter of the machine', { machineMemory: 24 * GB }, 4, 6 * GB],
    ['locally under a limit: a quarter of the limit', { cgroupLimit: 8 * GB, machineMemory: 24 * GB }, 4, 2 * GB],
  ])('%s', (_, r, share, want) => {
    expect(unitMemory(r, share)).toBe(want);
  });
});

describe('profile', () => {
  const base = { profile: 'production', 'max-connections': 100, 'shared-buffers': '', 'work-mem': '', 'maintenance-work-mem': '' };
  test.each<[string, Record<string, string | number>, number | undefined, Record<string, string>]>([
    [
      'production, 8 GB: 25 % shared_buffers, the rest cache, 1/16 maintenance, (8 GB - 2 GB) / 300 work_mem',
      base,
      8 * GB,
      { shared_buffers: '2048MB', effective_cache_size: '6144MB', maintenance_work_mem: '512MB', work_mem: '20971kB' },
    ],
    [
      'production, 64 GB: maintenance_work_mem stops at 2 GB',
      base,
      64 * GB,
      { shared_buffers: '16384MB', effective_cache_size: '49152MB', maintenance_work_mem: '2048MB', work_mem: '167772kB' },
    ],
    [
      'production, 1 GB and 1000 connections: work_mem shrinks with the connections',
      { ...base, 'max-connections': 1000 },
      1 * GB,
      { shared_buffers: '256MB', effective_cache_size: '768MB', maintenance_work_mem: '64MB', work_mem: '262kB' },
    ],
    [
      'production, 32 MB: floors (16 MB shared_buffers, 64 kB work_mem)',
      { ...base, 'max-connections': 10000 },
      32 * MB,
      { shared_buffers: '16MB', effective_cache_size: '16MB', maintenance_work_mem: '2MB', work_mem: '64kB' },
    ],
    ['testing: PostgreSQL defaults whatever the memory', { ...base, profile: 'testing' }, 64 * GB, { ...POSTGRES_DEFAULTS }],
    ['production without known memory: PostgreSQL defaults', base, undefined, { ...POSTGRES_DEFAULTS }],
    [
      'production: what the user set wins, the rest is sized',
      { ...base, 'shared-buffers': '1GB', 'work-mem': '8MB' },
      8 * GB,
      { shared_buffers: '1GB', effective_cache_size: '6144MB', maintenance_work_mem: '512MB', work_mem: '8MB' },
    ],
    [
      'testing: what the user set wins too',
      { ...base, profile: 'testing', 'maintenance-work-mem': '256MB' },
      8 * GB,
      { ...POSTGRES_DEFAULTS, maintenance_work_mem: '256MB' },
    ],
  ])('%s', (_, config, memory, want) => {
    expect(profileParams(config, memory)).toEqual(want);
  });
});

describe('max_slot_wal_keep_size', () => {
  test.each<[string, Record<string, string>, number | undefined, number, string]>([
    ['a quarter of a 20 GB volume', {}, 20 * GB, 1, '5120MB'],
    ['the charm minimum volume (1 GB): 256 MB', {}, 1 * GB, 1, '256MB'],
    ['never below wal_keep_size (128 MB)', {}, 200 * MB, 1, '128MB'],
    ['size unknown: as for the minimum volume', {}, undefined, 1, '256MB'],
    ['locally a quarter of a quarter of the shared filesystem', {}, 256 * GB, 4, '16384MB'],
    ['explicit wins, in MB', { 'max-slot-wal-keep-size': '2GB' }, 20 * GB, 1, '2048MB'],
    ['explicit below the floor is kept (the user asked)', { 'max-slot-wal-keep-size': '64MB' }, 20 * GB, 4, '64MB'],
    ['empty is the default', { 'max-slot-wal-keep-size': '' }, 20 * GB, 1, '5120MB'],
  ])('%s', (_, config, volume, share, want) => {
    expect(slotWalKeepSize(config, volume, share)).toBe(want);
  });

  test.each<[string, number | undefined, number, string]>([
    ['a large volume: PostgreSQL\'s 1 GB', 100 * GB, 1, '1024MB'],
    ['the minimum 1 GB volume: a quarter, so checkpoints (and slot invalidation) come before the disk fills', 1 * GB, 1, '256MB'],
    ['a tiny volume: at least 128 MB', 100 * MB, 1, '128MB'],
    ['unknown: as for the minimum volume', undefined, 1, '256MB'],
    ['locally, a large shared filesystem: 1 GB', 256 * GB, 4, '1024MB'],
  ])('max_wal_size: %s', (_, volume, share, want) => {
    expect(maxWalSize(volume, share)).toBe(want);
  });

  test('pgParams renders the profile and the bound from the resources; locally a quarter of each', () => {
    const config = { profile: 'production', 'max-connections': 100, 'shared-buffers': '', 'work-mem': '', 'maintenance-work-mem': '', 'max-slot-wal-keep-size': '' };
    const r: UnitResources = { machineMemory: 16 * GB, volumeBytes: 100 * GB };
    const local = pgParams(config, { host: '127.0.0.1', port: 5432, l: layout('/s', 15), resources: r });
    expect([local['shared_buffers'], local['max_slot_wal_keep_size']]).toEqual(['1024MB', '6400MB']);
    const pod = pgParams(config, { host: '10.1.2.3', port: 5432, l: layout('/s', 15), resources: r });
    expect([pod['shared_buffers'], pod['max_slot_wal_keep_size']]).toEqual(['4096MB', '25600MB']);
    const unknown = pgParams(config, { host: '10.1.2.3', port: 5432, l: layout('/s', 15) });
    expect([unknown['shared_buffers'], unknown['max_slot_wal_keep_size']]).toEqual(['128MB', '256MB']);
  });
});

describe('workload resources', () => {
  test.each<[string, string, UnitResources | undefined]>([
    ['cgroup v1 without a limit (2^63 rounded down to a page)', 'cgroup 9223372036854771712\nmeminfo 24683656\nfs 4096 66053021\n', { machineMemory: 24683656 * 1024, volumeBytes: 4096 * 66053021 }],
    ['cgroup v2 limits along the path: the lowest', 'cgroup max\ncgroup 2147483648\ncgroup 4294967296\nmeminfo 16000000\nfs 4096 1000\n', { cgroupLimit: 2 * GB, machineMemory: 16000000 * 1024, volumeBytes: 4096000 }],
    ['no statfs: volume unknown (0)', 'meminfo 1000\nfs \n', { machineMemory: 1024000, volumeBytes: 0 }],
    ['the kernel release', 'meminfo 1000\nfs 4096 10\nkernel 6.1.0-28-amd64\n', { machineMemory: 1024000, volumeBytes: 40960, kernel: '6.1.0-28-amd64' }],
    ['no meminfo: unknown', 'cgroup 1024\nfs 4096 10\n', undefined],
    ['garbage', 'sh: 1: stat: not found\n', undefined],
  ])('%s', (_, text, want) => {
    expect(parseResources(text)).toEqual(want);
  });
});

describe('syncfs instead of an fsync per file', () => {
  test.each<[string | undefined, boolean]>([
    ['6.18.44-fc-v782', true],
    ['5.8.0', true],
    ['5.15.0-122-generic', true],
    ['5.7.19', false],
    ['4.19.0-27-amd64', false],
    ['3.10.0-1160.el7.x86_64', false],
    ['', false],
    [undefined, false],
  ])('kernel %j: syncfs reports write errors: %j', (kernel, want) => {
    expect(syncfsReportsErrors(kernel)).toBe(want);
  });

  test('recovery_init_sync_method: syncfs only where it reports errors, fsync when the kernel is unknown', () => {
    const config = { profile: 'testing', 'max-connections': 100, 'max-slot-wal-keep-size': '' };
    const at = (kernel?: string) => pgParams(config, { host: '10.1.2.3', port: 5432, l: layout('/s', 15), resources: { machineMemory: GB, volumeBytes: GB, ...(kernel ? { kernel } : {}) } })['recovery_init_sync_method'];
    expect([at('6.1.0'), at('5.4.0'), at(), pgParams(config, { host: '10.1.2.3', port: 5432, l: layout('/s', 15) })['recovery_init_sync_method']]).toEqual(['syncfs', 'fsync', 'fsync', 'fsync']);
  });
});
