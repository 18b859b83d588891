import { describe, expect, it } from 'vitest';
import { applyCeilings, compileLimits, InputError, validateSpec } from '../../src/shared/index.js';
import { testConnections } from '../support/connections.js';

const base = {
  connection: { baseUrl: 'https://production.runalloy.com', credentialRef: 'ALLOY_API_KEY' },
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf_123' },
};
const connections = testConnections(base.connection.baseUrl);
const adaptive = (a: { min: number; max: number; initial?: number }) => ({ adaptive: a });

describe('adaptive concurrency in a spec', () => {
  it('takes {adaptive: {min, max, initial}} where a figure goes, initial optional', () => {
    const spec = validateSpec({ ...base, limits: [{ key: 'k', concurrency: adaptive({ min: 1, max: 200, initial: 4 }) }] }, 'spec', connections);
    expect(spec.limits[0]!.concurrency).toEqual(adaptive({ min: 1, max: 200, initial: 4 }));
    expect(validateSpec({ ...base, limits: [{ key: 'k', concurrency: adaptive({ min: 2, max: 3 }) }] }, 'spec', connections).limits).toHaveLength(1);
  });

  it.each([
    [{ min: 5, max: 4 }, /min/],
    [{ min: 1, max: 4, initial: 9 }, /initial/],
    [{ min: 0, max: 4 }, /./],
    [{ min: 1, max: 4, step: 2 }, /./],
  ] as [Record<string, number>, RegExp][])('refuses %j', (a, message) => {
    let err: unknown;
    try {
      validateSpec({ ...base, limits: [{ key: 'k', concurrency: { adaptive: a } }] }, 'spec', connections);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toMatch(message);
  });

  it('stores max as the figure and [min, max, initial] beside it', () => {
    const resolve = compileLimits(
      [{ key: 'k', concurrency: adaptive({ min: 2, max: 9 }) }, { key: 'f', concurrency: 3 }],
      { campaignId: 'c', baseUrl: 'u', connectionName: 'conn', operation: {} },
    );
    expect(resolve({ userId: 'x' })).toEqual([
      ['conn/k', 9, 0, 0, 1, [2, 9, 2]],
      ['conn/f', 3, 0, 0, 1],
    ]);
  });
});

describe('adaptive concurrency under a registry ceiling', () => {
  it('applies a registry adaptive ceiling the campaign does not name as declared', () => {
    const ceiling = { key: 'edge', concurrency: adaptive({ min: 1, max: 50, initial: 4 }) };
    expect(applyCeilings([], { limits: [ceiling] })).toEqual({ limits: [{ ...ceiling, shared: true }], warnings: [] });
  });

  it('clips an adaptive limit above a fixed ceiling, and a fixed limit above an adaptive ceiling\'s max', () => {
    const fixedCeiling = { limits: [{ key: 'edge', concurrency: 10 }] };
    expect(applyCeilings([{ key: 'edge', concurrency: adaptive({ min: 2, max: 40, initial: 20 }) }], fixedCeiling)).toEqual({
      limits: [{ key: 'edge', concurrency: adaptive({ min: 2, max: 10, initial: 10 }), shared: true }],
      warnings: ["limits[0].concurrency adaptive max 40 clipped to the connection's ceiling 10"],
    });
    const adaptiveCeiling = { limits: [{ key: 'edge', concurrency: adaptive({ min: 1, max: 8 }) }] };
    expect(applyCeilings([{ key: 'edge', concurrency: 20 }], adaptiveCeiling).limits).toEqual([{ key: 'edge', concurrency: 8, shared: true }]);
    // Within the ceiling: kept as the campaign wrote it.
    expect(applyCeilings([{ key: 'edge', concurrency: adaptive({ min: 1, max: 5 }) }], adaptiveCeiling)).toEqual({
      limits: [{ key: 'edge', concurrency: adaptive({ min: 1, max: 5 }), shared: true }],
      warnings: [],
    });
  });
});
