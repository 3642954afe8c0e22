import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { deployArgs, testModel, type RecordedEvent, type TestModel } from '../helpers/model.js';
import { waitFor } from '../helpers/procs.js';

interface RelEvent extends RecordedEvent {
  relation?: { id: number; name: string; app: string; units: string[]; dying: boolean; remoteApp: Record<string, string>; localApp: Record<string, string> };
  secret?: Record<string, string> | null;
  revision?: number;
}

/**
 * Relations between applications with the recorder charm: `prov` (2 units) provides `db`,
 * `req` (1 unit, then 2) requires `upstream`, same interface. Juju's event names and order,
 * its bag write rules, secrets granted to a relation, scope kept across an agent restart, and
 * remove-relation.
 */
describe('relations between applications', () => {
  let m: TestModel;
  const ev = (pod: string) => m.events(pod) as RelEvent[];
  const relEvents = (pod: string, id?: number) => ev(pod).filter((e) => e.relation && (id === undefined || e.relation.id === id));
  const run = async (unit: string, action: string, params: string[], app: string) => {
    const r = await m.cli(['run', '--app', app, unit, action, ...params, '--wait']);
    return { code: r.code, out: (parse(r.stdout || '{}') ?? {}) as Record<string, { status: string; message?: string; results?: Record<string, unknown> }>, stderr: r.stderr };
  };

  beforeAll(async () => {
    m = testModel();
    for (const [app, n] of [['prov', 2], ['req', 1], ['other', 1]] as const) {
      const r = await m.cli([...deployArgs(m, n), '--app', app]);
      expect(r.code, r.stderr).toBe(0);
    }
  }, 180_000);
  afterAll(async () => {
    await m?.cleanup();
  }, 60_000);

  it('refuses what cannot be integrated, naming the candidates, and changes nothing', async () => {
    const ambiguous = await m.cli(['integrate', 'prov', 'req']);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/ambiguous integration between prov and req: name the endpoints, one of prov:db req:upstream \| req:db prov:upstream/);
    const unknown = await m.cli(['integrate', 'prov:nope', 'req']);
    expect(unknown.stderr).toMatch(/prov has no endpoint "nope": its endpoints are prov:db \(provides recorder_db\), prov:upstream \(requires recorder_db\)/);
    const mismatch = await m.cli(['integrate', 'prov:db', 'req:db']);
    expect(mismatch.stderr).toMatch(/no matching endpoints between prov and req: a provider and a requirer of the same interface are needed/);
    const self = await m.cli(['integrate', 'prov:db', 'prov:upstream']);
    expect(self.stderr).toMatch(/cannot integrate prov with itself/);
    const missing = await m.cli(['integrate', 'prov:db', 'ghost']);
    expect(missing.stderr).toMatch(/no application ghost in this model: applications are other, prov, req/);
    const s = await m.cli(['status']);
    expect(s.stdout).not.toMatch(/regular/);
    expect(relEvents('prov-0')).toEqual([]);
  });

  it('integrate: both sides get -created, then -joined and -changed per remote unit, and the data flows', async () => {
    const r = await m.cli(['integrate', 'prov:db', 'req:upstream']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/integrated prov:db and req:upstream \(recorder_db, relation 1\)/);
    // The requirer asked (its leader wrote `ask` at -created); the provider's leader answered with a secret.
    const got = await waitFor('req/0 read the shared secret', () => ev('req-0').find((e) => e.event === 'upstream-relation-changed' && e.secret?.['token'] === 'hello'), 30_000);
    expect(got.relation).toMatchObject({ id: 1, name: 'upstream', app: 'prov', dying: false });
    expect(got.relation!.remoteApp['answer']).toBe('hello req');
    expect(got.relation!.remoteApp['secret']).toMatch(/^secret:[0-9a-v]{20}$/);
    await waitFor('req/0 joined both provider units', () => relEvents('req-0', 1).filter((e) => e.event === 'upstream-relation-joined').length === 2);
    for (const pod of ['prov-0', 'prov-1']) await waitFor(`${pod} joined req/0`, () => relEvents(pod, 1).some((e) => e.event === 'db-relation-joined' && e.remote === 'req/0'));
    // Juju's order on every unit: -created first; for each remote unit -joined before its -changed.
    for (const pod of ['prov-0', 'prov-1', 'req-0']) {
      const names = relEvents(pod, 1).map((e) => `${e.event.replace(/^(db|upstream)-relation-/, '')}:${e.remote ?? 'app'}`);
      expect(names[0], pod).toBe('created:app');
      expect(names.filter((n) => n === 'created:app')).toHaveLength(1);
      for (const [i, n] of names.entries()) {
        if (n.startsWith('changed:') && n !== 'changed:app') expect(names.slice(0, i), `${pod}: ${names.join(' ')}`).toContain(`joined:${n.slice(8)}`);
      }
    }
    const joinedOn = relEvents('req-0', 1).find((e) => e.event === 'upstream-relation-joined')!;
    expect(joinedOn.relation!.units).toContain(joinedOn.remote);
    const st = await m.cli(['status']);
    expect(st.stdout).toMatch(/Integration provider\s+Requirer\s+Interface\s+Type\s+Id/);
    expect(st.stdout).toMatch(/prov:db\s+req:upstream\s+recorder_db\s+regular\s+1/);
    expect(st.stdout).toMatch(/prov:peers\s+prov:peers\s+recorder_peers\s+peer/);
    const again = await m.cli(['integrate', 'prov:db', 'req:upstream']);
    expect(again.stderr).toMatch(/prov:db and req:upstream are already integrated \(relation 1\)/);
    const limited = await m.cli(['integrate', 'other:db', 'req:upstream']);
    expect(limited.code).toBe(1);
    expect(limited.stderr).toMatch(/req:upstream has 1 relation already, its limit \(charm\.yaml: limit: 1\)/);
  }, 60_000);

  it("enforces Juju's write rules: own unit bag yes, application bag only on the leader, the other side's never", async () => {
    const remote = await run('req/0', 'write-relation', ['target=remote-app', 'key=x', 'value=1'], 'req');
    expect(remote.out['req/0']).toMatchObject({ status: 'failed' });
    expect(remote.out['req/0']!.message).toMatch(/req cannot write prov's bag of relation 1: nobody writes the other side's/);
    const remoteUnit = await run('req/0', 'write-relation', ['target=remote-unit', 'key=x', 'value=1'], 'req');
    expect(remoteUnit.out['req/0']!.message).toMatch(/cannot write the bag of unit prov\/\d: nobody writes the other side's/);
    const leaderLease = JSON.parse((await m.cli(['status', '--app', 'prov', '--format', 'json'])).stdout) as { application: { leader: string } };
    const follower = leaderLease.application.leader === 'prov/0' ? 'prov/1' : 'prov/0';
    const app = await run(follower, 'write-relation', ['target=app', 'key=x', 'value=1'], 'prov');
    expect(app.out[follower]!.message).toMatch(/is not the leader: only the leader writes prov's bag of relation 1/);
    const own = await run(follower, 'write-relation', ['target=unit', 'key=mood', 'value=fine'], 'prov');
    expect(own.out[follower]).toMatchObject({ status: 'completed' });
    await waitFor('req/0 saw the unit bag change', () => relEvents('req-0', 1).some((e) => e.event === 'upstream-relation-changed' && e.remote === follower));
  }, 60_000);

  it('secrets: a new revision reaches the consumer as secret-changed; an application it was not granted to cannot read it', async () => {
    const rot = await run('leader', 'rotate-secret', ['token=second'], 'prov');
    const leader = Object.keys(rot.out)[0]!;
    expect(rot.out[leader]).toMatchObject({ status: 'completed', results: { revision: 2 } });
    const id = String(rot.out[leader]!.results!['id']);
    await waitFor('req/0 got secret-changed with the new content', () => ev('req-0').find((e) => e.event === 'secret-changed' && e.secret?.['token'] === 'second' && e.revision === 2));
    const stranger = await run('other/0', 'read-secret', [`id=${id}`], 'other');
    expect(stranger.out['other/0']).toMatchObject({ status: 'failed' });
    expect(stranger.out['other/0']!.message).toMatch(new RegExp(`secret ${id} is not granted to other`));
    const granted = await run('req/0', 'read-secret', [`id=${id}`], 'req');
    expect(granted.out['req/0']).toMatchObject({ status: 'completed', results: { token: 'second' } });
  }, 60_000);

  it('a new remote unit joins; a restarted agent neither repeats -created/-joined nor misses anything', async () => {
    expect((await m.cli(['add-unit', '--app', 'req'])).code).toBe(0);
    for (const pod of ['prov-0', 'prov-1']) await waitFor(`${pod} joined req/1`, () => relEvents(pod, 1).some((e) => e.event === 'db-relation-joined' && e.remote === 'req/1'), 60_000);
    await waitFor('req/1 read the secret', () => ev('req-1').some((e) => e.event === 'upstream-relation-changed' && e.secret?.['token'] === 'second'), 30_000);
    const before = relEvents('req-0', 1).length;
    // Down while the secret gets a new revision: it hears of it when it comes back.
    const k = await m.cli(['kill', '--app', 'req', 'req/0', '--no-restart']);
    expect(k.code, k.stderr).toBe(0);
    const rot = await run('leader', 'rotate-secret', ['token=third'], 'prov');
    expect(Object.values(rot.out)[0]).toMatchObject({ status: 'completed', results: { revision: 3 } });
    expect((await m.cli(['kill', '--app', 'req', 'req/0', '--revive'])).code).toBe(0);
    await waitFor('req/0 started again', () => ev('req-0').filter((e) => e.event === 'start').length >= 2, 60_000);
    await waitFor('req/0 got secret-changed for the revision made while it was down', () => ev('req-0').find((e) => e.event === 'secret-changed' && e.secret?.['token'] === 'third' && e.revision === 3), 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    const after = relEvents('req-0', 1).slice(before).map((e) => e.event);
    expect(after).not.toContain('upstream-relation-created');
    expect(after).not.toContain('upstream-relation-joined');
  }, 120_000);

  it('remove-relation: every unit runs -departed for each remote unit, then -broken; the bags and the relation go; a new one gets a new id', async () => {
    const r = await m.cli(['remove-relation', 'prov', 'req']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed relation 1 \(prov:db req:upstream\)/);
    for (const [pod, remotes] of [['prov-0', ['req/0', 'req/1']], ['prov-1', ['req/0', 'req/1']], ['req-0', ['prov/0', 'prov/1']], ['req-1', ['prov/0', 'prov/1']]] as const) {
      const names = relEvents(pod, 1).map((e) => `${e.event.replace(/^(db|upstream)-relation-/, '')}:${e.remote ?? 'app'}`);
      const broken = names.indexOf('broken:app');
      expect(broken, `${pod}: ${names.join(' ')}`).toBe(names.length - 1);
      for (const u of remotes) expect(names.slice(0, broken)).toContain(`departed:${u}`);
      const last = relEvents(pod, 1).at(-1)!;
      expect(last.relation!.dying).toBe(true);
    }
    const st = await m.cli(['status']);
    expect(st.stdout).not.toMatch(/regular/);
    const gone = await m.cli(['remove-relation', '1']);
    expect(gone.stderr).toMatch(/no relation 1/);
    const again = await m.cli(['integrate', 'req:upstream', 'prov:db']);
    expect(again.stderr).toMatch(/relation 2\)/);
    await waitFor('req/0 got relation 2 created', () => relEvents('req-0', 2).some((e) => e.event === 'upstream-relation-created'));
  }, 90_000);
});
