import { describe, expect, it } from 'vitest';
import { inputError } from '../support/errors.js';
import { InputError, parseConnections, signatureHeader, signPayload, validateSpec, verifySignature } from '../../src/shared/index.js';

const base = {
  connection: 'ALLOY_API_KEY',
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf_123' },
};
const registry = (notifiers: unknown) =>
  parseConnections(
    { connections: { ALLOY_API_KEY: { baseUrl: 'https://production.runalloy.com', credentialRef: 'ALLOY_API_KEY' } }, notifiers },
    'registry.json',
  );

describe('webhook signature', () => {
  // The expected value is openssl's: printf '%s' '1700000000.{"id":"c:1"}' | openssl dgst -sha256 -hmac whsec_test
  const body = '{"id":"c:1"}';
  const v1 = '4185825fe4865f0a3c134d475cf6ea4404e1b7ac143748334f6c436a35add932';

  it('is the hex HMAC-SHA256 of "<t>.<body>", in the header as t=...,v1=...', () => {
    expect(signPayload('whsec_test', 1_700_000_000, body)).toBe(v1);
    expect(signatureHeader('whsec_test', 1_700_000_000, body)).toBe(`t=1700000000,v1=${v1}`);
  });

  it('verifies with the secret, within the tolerance, and for the exact body only', () => {
    const header = `t=1700000000,v1=${v1}`;
    expect(verifySignature('whsec_test', header, body, 300, 1_700_000_100)).toBe(true);
    expect(verifySignature('other', header, body, 300, 1_700_000_100)).toBe(false);
    expect(verifySignature('whsec_test', header, `${body} `, 300, 1_700_000_100)).toBe(false);
    // A delivery captured and replayed later than the tolerance is refused.
    expect(verifySignature('whsec_test', header, body, 300, 1_700_000_301)).toBe(false);
    expect(verifySignature('whsec_test', `t=1700000001,v1=${v1}`, body, 300, 1_700_000_100)).toBe(false);
    expect(verifySignature('whsec_test', 'garbage', body)).toBe(false);
  });
});

describe('notifiers registry', () => {
  it('normalises the url, defaults privateNetwork to false, and is frozen', () => {
    const r = registry({ 'ops-hook': { url: 'HTTPS://Hooks.Example.com:443/upshift/', secretRef: 'OPS_HOOK_SECRET' } });
    expect(r.notifiers['ops-hook']).toEqual({ url: 'https://hooks.example.com/upshift', secretRef: 'OPS_HOOK_SECRET', privateNetwork: false });
    expect(Object.isFrozen(r.notifiers['ops-hook'])).toBe(true);
    expect(registry(undefined).notifiers).toEqual({});
  });

  it.each([
    ['a secret value as secretRef', { url: 'https://h.example.com', secretRef: 'whsec5f0a3c134d475cf6ea44' }, 'notifiers.ops-hook.secretRef'],
    ['a secretRef that is no variable name', { url: 'https://h.example.com', secretRef: 'ops-secret' }, 'notifiers.ops-hook.secretRef'],
    ['a url with a query', { url: 'https://h.example.com/x?token=1', secretRef: 'S' }, 'notifiers.ops-hook.url'],
    ['a url with credentials', { url: 'https://u:p@h.example.com/x', secretRef: 'S' }, 'notifiers.ops-hook.url'],
    ['a non-http url', { url: 'ftp://h.example.com', secretRef: 'S' }, 'notifiers.ops-hook.url'],
    ['an unknown field', { url: 'https://h.example.com', secretRef: 'S', headers: {} }, 'notifiers.ops-hook'],
  ])('refuses %s, naming the notifier and field', (_, entry, field) => {
    const e = inputError(() => registry({ 'ops-hook': entry }));
    expect(e.code).toBe('CONNECTIONS_INVALID');
    expect(e.field).toBe(field);
    expect(e.message).toContain('(notifier "ops-hook")');
  });
});

describe('spec notify', () => {
  const r = registry({ 'ops-hook': { url: 'https://hooks.example.com/upshift', secretRef: 'OPS_HOOK_SECRET' } });

  it('accepts registered notifiers and the known events', () => {
    const spec = validateSpec({ ...base, notify: [{ to: 'ops-hook', events: ['completed', 'gated', 'undo-started'] }] }, 'spec', r);
    expect(spec.notify).toEqual([{ to: 'ops-hook', events: ['completed', 'gated', 'undo-started'] }]);
    expect(validateSpec(base, 'spec', r).notify).toBeUndefined();
  });

  it('refuses an unregistered notifier as NOTIFIER_NOT_REGISTERED naming notify[i].to', () => {
    const e = inputError(() =>
      validateSpec({ ...base, notify: [{ to: 'ops-hook', events: ['completed'] }, { to: 'nope', events: ['paused'] }] }, 'spec', r),
    );
    expect(e.code).toBe('NOTIFIER_NOT_REGISTERED');
    expect(e.field).toBe('notify[1].to');
    expect(e.message).toContain('"nope"');
  });

  it.each([
    ['an unknown event', [{ to: 'ops-hook', events: ['started'] }], 'notify[0].events[0]'],
    ['no events', [{ to: 'ops-hook', events: [] }], 'notify[0].events'],
    ['a notifier named twice', [{ to: 'ops-hook', events: ['paused'] }, { to: 'ops-hook', events: ['completed'] }], 'notify'],
    ['a url instead of a name', [{ to: 'https://evil.example.com', events: ['paused'] }], 'notify[0].to'],
  ])('refuses %s', (_, notify, field) => {
    const e = inputError(() => validateSpec({ ...base, notify }, 'spec', r));
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.field).toBe(field);
  });
});
