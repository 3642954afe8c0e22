import { describe, expect, it } from 'vitest';
import { standbyFloor } from '../../agent/charm/postgresql/charm.js';

describe('standbyFloor: a standby starts with what its primary ran with, never less', () => {
  it.each<[string, Record<string, string>, Record<string, number>, Record<string, string>, string[]]>([
    ['config lowered below the primary: raised to the control file', { max_connections: '50', max_wal_senders: '10' }, { max_connections: 100, max_wal_senders: 10 }, { max_connections: '100', max_wal_senders: '10' }, ['max_connections']],
    ['config raised: kept', { max_connections: '200' }, { max_connections: 100 }, { max_connections: '200' }, []],
    ['no control file values (a running server): unchanged', { max_connections: '50' }, {}, { max_connections: '50' }, []],
    ['not a standby minimum: untouched', { work_mem: '1' , max_connections: '100' }, { max_connections: 100, work_mem: 99 } as Record<string, number>, { work_mem: '1', max_connections: '100' }, []],
    ['max_prepared_transactions from max_prepared_xacts', { max_prepared_transactions: '0' }, { max_prepared_transactions: 5 }, { max_prepared_transactions: '5' }, ['max_prepared_transactions']],
    ['a parameter the config does not set: left to the server', {}, { max_connections: 100 }, {}, []],
  ])('%s', (_, params, floor, want, raised) => {
    const p = { ...params };
    expect(standbyFloor(p, floor)).toEqual(raised);
    expect(p).toEqual(want);
  });
});
