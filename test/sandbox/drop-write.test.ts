/**
 * `dropWriteRate`: a write the platform answers 2xx whose change is not kept (a platform that
 * acknowledges and loses the write), and `load()` as the way to edit a target behind Upshift's back.
 */
import { describe, expect, it, vi } from 'vitest';
import { startSandbox } from '../../src/sandbox/index.js';
import { setupSandbox, spawnListening } from '../support/deployment.js';
import { runCli } from '../support/fleet.js';
import { ALLOY, CONDUCTOR, NECTED, TALLYFY, DEFAULT_CONFIG, FIXTURES, apiOn, call, definition, type Answer } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

/** One write per platform that has one: its request, and its target key in `appliedByTarget`. */
const WRITES: { name: string; target: string; send: () => Promise<Answer> }[] = [
  {
    name: 'alloy upgrade PUT',
    target: 'alloy:wf-1:u-1',
    send: () => api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY }),
  },
  {
    name: 'conductor upgrade POST',
    target: 'conductor:exec:exec-1',
    send: () => api('POST', '/api/workflow/exec-1/upgrade', { headers: CONDUCTOR, body: { name: 'order', version: 2 } }),
  },
  {
    name: 'conductor definition PUT',
    target: 'conductor:def:order',
    send: () =>
      api('PUT', '/api/metadata/workflow?overwrite=true', { headers: CONDUCTOR, body: { ...definition(2), description: 'new' } }),
  },
  {
    name: 'tallyfy run PUT',
    target: 'tallyfy:org-1:run-1',
    send: () => api('PUT', '/organizations/org-1/runs/run-1', { headers: TALLYFY, body: { name: 'Renamed' } }),
  },
  {
    name: 'nected PATCH',
    target: 'nected::ent-1',
    send: async () => {
      const { data } = (await api('GET', '/dev/v1/workflow/ent-1', { headers: NECTED })).json;
      return api('PATCH', '/dev/v1/workflow/ent-1', { headers: NECTED, body: { ...data, name: 'renamed' } });
    },
  },
];

describe('dropWriteRate', () => {
  for (const write of WRITES) {
    it(`${write.name}: answered 2xx, change not kept, counted as dropped`, async () => {
      const before = sb.state();
      sb.configure({ dropWriteRate: 1 });
      const r = await write.send();
      expect(r.status).toBeGreaterThanOrEqual(200);
      expect(r.status).toBeLessThan(300);
      expect(sb.state()).toEqual(before);
      const stats = sb.stats();
      expect(stats.faults.droppedWrites).toBe(1);
      expect(stats.appliedByTarget).toEqual({});
      const writes = sb.received!.filter((q) => q.method !== 'GET');
      expect(writes).toHaveLength(1);
      expect(writes[0]).toMatchObject({ status: r.status, fault: 'dropped' });
      // Reads are never dropped (nor marked): the nected GET before its PATCH is a plain 200.
      for (const read of sb.received!.filter((q) => q.method === 'GET')) expect(read.fault).toBeUndefined();
    });

    it(`${write.name}: kept at rate 0`, async () => {
      const before = sb.state();
      const r = await write.send();
      expect(r.status).toBeGreaterThanOrEqual(200);
      expect(r.status).toBeLessThan(300);
      expect(sb.state()).not.toEqual(before);
      expect(sb.stats().faults.droppedWrites).toBe(0);
      expect(sb.stats().appliedByTarget).toEqual({ [write.target]: 1 });
      expect(sb.received!.every((q) => q.fault === undefined)).toBe(true);
    });
  }

  it('shows the dropped change to no read: the platform GET answers the old state', async () => {
    const read = () => api('GET', '/api/workflow/exec-1', { headers: CONDUCTOR });
    const before = await read();
    sb.configure({ dropWriteRate: 1 });
    // A minute later (only Date is faked), so a restore that stamped new times would show.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 60_000 });
    let after;
    try {
      const upgraded = await api('POST', '/api/workflow/exec-1/upgrade', { headers: CONDUCTOR, body: { name: 'order', version: 2 } });
      expect(upgraded.status).toBe(200);
      after = await read();
    } finally {
      vi.useRealTimers();
    }
    expect(after.status).toBe(200);
    expect(after.json.workflowVersion).toBe(1);
    // Exactly as before, times included: the restore must not give itself away.
    expect(after.json).toEqual(before.json);
    expect(sb.stats().faults.droppedWrites).toBe(1);
    for (const q of sb.received!.filter((r) => r.method === 'GET')) expect(q.fault).toBeUndefined();
  });

  it('does not count a write the platform refuses as dropped', async () => {
    sb.configure({ dropWriteRate: 1 });
    const r = await api('POST', '/api/workflow/exec-done/upgrade', { headers: CONDUCTOR, body: { name: 'order', version: 2 } });
    expect(r.status).toBe(409);
    expect(sb.stats().faults.droppedWrites).toBe(0);
    expect(sb.received![0]!.fault).toBeUndefined();
  });

  it('counts each dropped write; a rejected draw keeps the write', async () => {
    sb.configure({ dropWriteRate: 0.5 });
    const users = Array.from({ length: 40 }, (_, i) => `d-${i}`);
    sb.load({ alloy: { installs: users.map((userId) => ({ workflowId: 'wf-1', userId, version: 4 })) } });
    for (const userId of users) {
      expect((await api('PUT', `/workflows/wf-1/upgrade?userId=${userId}`, { headers: ALLOY })).status).toBe(200);
    }
    const kept = sb.state().alloy!.installs!.filter((i) => users.includes(i.userId) && i.version === 5).length;
    const { faults, appliedByTarget } = sb.stats();
    expect(faults.droppedWrites).toBeGreaterThan(0);
    expect(kept).toBeGreaterThan(0);
    expect(faults.droppedWrites + kept).toBe(users.length);
    expect(Object.keys(appliedByTarget)).toHaveLength(kept);
  });

  it('repeats the same drop sequence for the same seed, after a reset too', async () => {
    const pattern = async (seed: number): Promise<string[]> => {
      const s = await startSandbox({ seed, dropWriteRate: 0.5, record: true });
      try {
        const runs = async (): Promise<string> => {
          s.load(FIXTURES);
          const out: string[] = [];
          for (let i = 0; i < 24; i++) {
            // Reads in between draw nothing: they must not shift the drop sequence.
            await call(s.url, 'GET', '/api/workflow/exec-1', { headers: CONDUCTOR });
            const r = await call(s.url, 'PUT', '/organizations/org-1/runs/run-1', { headers: TALLYFY, body: { name: `n${i}` } });
            expect(r.status).toBe(200);
            const now = s.state().tallyfy!.runs!.find((run) => run.id === 'run-1')!.name;
            out.push(now === `n${i}` ? 'k' : 'd');
          }
          return out.join('');
        };
        const first = await runs();
        s.reset();
        const again = await runs();
        expect(again).toBe(first);
        expect(s.stats().faults.droppedWrites).toBe(first.split('d').length - 1);
        return [first];
      } finally {
        await s.close();
      }
    };
    const [a] = await pattern(7);
    const [b] = await pattern(7);
    const [c] = await pattern(8);
    expect(a).toBe(b);
    expect(a).toMatch(/d/);
    expect(a).toMatch(/k/);
    expect(c).not.toBe(a);
  });

  it('does not move the other faults: the failure sequence is the same with writes dropped or not', async () => {
    const statuses = async (dropWriteRate: number): Promise<number[]> => {
      const s = await startSandbox({ seed: 3, failRate: 0.3, slowRate: 0, dropWriteRate });
      try {
        s.load(FIXTURES);
        const out: number[] = [];
        for (let i = 0; i < 30; i++) {
          out.push((await call(s.url, 'PUT', '/organizations/org-1/runs/run-1', { headers: TALLYFY, body: { name: `n${i}` } })).status);
        }
        return out;
      } finally {
        await s.close();
      }
    };
    const plain = await statuses(0);
    expect(plain.some((st) => st >= 500)).toBe(true);
    expect(await statuses(0.7)).toEqual(plain);
  });

  it('is refused outside 0..1', () => {
    expect(() => sb.configure({ dropWriteRate: 1.5 })).toThrow(/dropWriteRate/);
  });
});

describe('editing a target behind Upshift\u2019s back', () => {
  it('load() with one changed record replaces it, and the platform API shows the change', async () => {
    const get = () => api('GET', '/dev/v1/workflow/ent-1', { headers: NECTED });
    const before = (await get()).json.data;
    expect(before.name).toBe('main wf');
    sb.load({ nected: { workflows: [{ entityId: 'ent-1', graph: { name: 'edited by hand', nodes: [], edges: [] } }] } });
    const after = (await get()).json.data;
    expect(after.name).toBe('edited by hand');
    expect(after).not.toHaveProperty('description'); // replaced, not merged
    expect(after.checksum).not.toBe(before.checksum); // a client holding the old checksum now conflicts
    // The other records are untouched, and nothing counts as applied by a client.
    expect(sb.state().nected!.workflows).toHaveLength(FIXTURES.nected!.workflows!.length);
    expect(sb.stats().appliedByTarget).toEqual({});
  });
});

describe('upshift sandbox: run-time options as flags', () => {
  it('starts a sandbox that drops writes at that rate', async () => {
    const { proc, url, exited } = await spawnListening('sandbox', ['--port', '0', '--drop-write-rate', '1']);
    try {
      expect((await call(url, 'POST', '/__sandbox/fixtures', { headers: { 'content-type': 'application/json' }, body: FIXTURES })).status).toBe(204);
      expect((await call(url, 'PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY })).status).toBe(200);
      const stats = (await call(url, 'GET', '/__sandbox/stats')).json;
      expect(stats.faults.droppedWrites).toBe(1);
      const state = (await call(url, 'GET', '/__sandbox/state')).json;
      expect(state.alloy.installs.find((i: { userId: string }) => i.userId === 'u-1').version).toBe(4);
    } finally {
      proc.kill('SIGTERM');
      await exited;
    }
  });

  it("takes a platform's own option as a flag too, checked by the platform's schema", async () => {
    const { proc, url, exited } = await spawnListening('sandbox', ['--port', '0', '--conflict-rate', '1', '--conflict-status', '400']);
    try {
      expect((await call(url, 'POST', '/__sandbox/fixtures', { headers: { 'content-type': 'application/json' }, body: FIXTURES })).status).toBe(204);
      const { data } = (await call(url, 'GET', '/dev/v1/workflow/ent-1', { headers: NECTED })).json;
      // Every write meets a concurrent edit, answered with the flag's status instead of 409.
      expect((await call(url, 'PATCH', '/dev/v1/workflow/ent-1', { headers: NECTED, body: { ...data, name: 'renamed' } })).status).toBe(400);
    } finally {
      proc.kill('SIGTERM');
      await exited;
    }
    const r = await runCli(['sandbox', '--port', '0', '--conflict-status', '401'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--conflict-status/);
  });

  it('refuses a rate above 1 as an input error', async () => {
    const r = await runCli(['sandbox', '--port', '0', '--drop-write-rate', '1.5'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/drop-write-rate/);
  });
});
