import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decidePending, type RoleHas } from '../../agent/charm/postgresql/password-change.js';
import { passwordMatches, scramVerifier } from '../../agent/charm/postgresql/scram.js';

describe('set-password recovery: a pending change is finished or rolled back by what the role has', () => {
  it.each([
    // pending in the Secret?, what the primary says the role has, decision
    [false, 'current', 'nothing'],
    [false, 'unknown', 'nothing'],
    [true, 'pending', 'commit'], // stopped after ALTER ROLE, before the commit
    [true, 'both', 'commit'], // the same password again
    [true, 'current', 'rollback'], // stopped before ALTER ROLE (or it failed)
    [true, 'neither', 'nothing'], // changed outside the charm: a person decides
    [true, 'unknown', 'nothing'], // no primary to ask: next event
  ] as [boolean, RoleHas, string][])('pending %s, role has %s -> %s', (pending, has, want) => {
    const d = decidePending(pending, has);
    expect(d.action).toBe(want);
    expect(d.why.length).toBeGreaterThan(10);
  });
});

describe('which password a role has, from pg_authid', () => {
  it('SCRAM verifiers: the password it was made from matches, any other does not', () => {
    const v = scramVerifier('correct horse');
    expect(passwordMatches(v, 'rewind', 'correct horse')).toBe(true);
    expect(passwordMatches(v, 'rewind', 'correct horsE')).toBe(false);
    expect(passwordMatches(scramVerifier('x', 10000), 'rewind', 'x')).toBe(true);
  });
  it('md5 hashes (password-encryption md5) and no password at all', () => {
    const md5 = 'md5' + createHash('md5').update('pw' + 'monitoring').digest('hex');
    expect(passwordMatches(md5, 'monitoring', 'pw')).toBe(true);
    expect(passwordMatches(md5, 'rewind', 'pw')).toBe(false);
    expect(passwordMatches(null, 'monitoring', 'pw')).toBe(false);
    expect(passwordMatches('garbage', 'monitoring', 'pw')).toBe(false);
  });
});
