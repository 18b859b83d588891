import { describe, expect, it } from 'vitest';
import { SANDBOX_KEYS } from '../../src/sandbox/index.js';
import { setupSandbox } from '../support/deployment.js';
import { type Headers, without, ALLOY, ODD_ID, enc, FIXTURES, DEFAULT_CONFIG, apiOn } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

describe('alloy', () => {
  const upgrade = (headers: Headers, query = '?userId=u-1', id = 'wf-1') =>
    api('PUT', `/workflows/${enc(id)}/upgrade${query}`, { headers });
  const installOf = (userId: string) => sb.state().alloy!.installs!.find((i) => i.userId === userId)!;

  it('upgrades to the latest version and counts it', async () => {
    const r = await upgrade(ALLOY);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ upgraded: true });
    expect(installOf('u-1').version).toBe(5);
    expect(sb.stats().appliedByTarget['alloy:wf-1:u-1']).toBe(1);
  });

  it('accepts the auth scheme in any case but the key only exactly', async () => {
    expect((await upgrade({ ...ALLOY, authorization: `BEARER ${SANDBOX_KEYS.alloy}` })).status).toBe(200);
    expect((await upgrade({ ...ALLOY, authorization: `bearer ${SANDBOX_KEYS.alloy.toUpperCase()}` })).status).toBe(401);
    expect((await upgrade({ ...ALLOY, authorization: SANDBOX_KEYS.alloy })).status).toBe(401);
    const missing = await upgrade(without(ALLOY, 'authorization'));
    expect(missing.status).toBe(401);
    expect(missing.json).toEqual({ message: 'Unauthorized' });
  });

  it('requires x-api-version 2025-09 exactly', async () => {
    for (const headers of [without(ALLOY, 'x-api-version'), { ...ALLOY, 'x-api-version': '2024-06' }]) {
      const r = await upgrade(headers);
      expect(r.status).toBe(400);
      expect(r.json).toEqual({ message: 'unsupported x-api-version' });
    }
    expect(installOf('u-1').version).toBe(4);
  });

  it('requires userId', async () => {
    expect((await upgrade(ALLOY, '')).status).toBe(400);
    expect((await upgrade(ALLOY, '?userId=')).status).toBe(400);
  });

  it('answers 404, 403 and the documented empty 400', async () => {
    expect((await upgrade(ALLOY, '?userId=nobody')).status).toBe(404);
    expect((await upgrade(ALLOY, '?userId=u-1', 'wf-unknown')).json).toEqual({ message: 'not found' });
    expect((await upgrade(ALLOY, '?userId=u-forbidden')).status).toBe(403);
    const reinstall = await upgrade(ALLOY, '?userId=u-reinstall');
    expect(reinstall.status).toBe(400);
    expect(reinstall.json).toEqual({});
    expect(installOf('u-reinstall').version).toBe(4);
    expect(sb.stats().appliedByTarget).toEqual({});
  });

  it('looks up an id with encoded / ? # % literally', async () => {
    const r = await upgrade(ALLOY, `?userId=${enc('user \u00e9')}`, ODD_ID);
    expect(r.status).toBe(200);
    expect(installOf('user \u00e9').version).toBe(3);
    expect(sb.stats().requestsByTarget[`alloy:${ODD_ID}:user \u00e9`]).toBe(1);
  });
});
