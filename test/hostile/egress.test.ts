/**
 * The egress guard's address classes (docs/SECURITY.md): which literal addresses a connection
 * without `privateNetwork` may not reach (loopback, private, link-local, metadata, multicast and
 * their IPv4-mapped and NAT64 spellings), and that a refusal is final, not retried.
 */
import { describe, expect, it } from 'vitest';
import { classifyError, HttpClient } from '../../src/shared/index.js';
import { isDeniedAddress } from '../../src/shared/egress.js';

describe('egress guard: address classes', () => {
  it.each([
    ['127.0.0.1'], ['127.255.0.9'], ['10.1.2.3'], ['172.16.0.1'], ['172.31.255.255'], ['192.168.1.1'], ['169.254.169.254'], ['100.64.0.1'], ['100.127.255.255'],
    ['0.0.0.0'], ['224.0.0.1'], ['255.255.255.255'], ['::1'], ['::'], ['fc00::1'], ['fd12:3456::1'], ['fe80::1'], ['ff02::1'],
    ['::ffff:127.0.0.1'], ['::ffff:7f00:1'], ['::ffff:169.254.169.254'], ['::ffff:10.0.0.1'], ['::127.0.0.1'], ['64:ff9b::a9fe:a9fe'], ['[::1]'], ['fe80::1%eth0'],
  ])('%s is refused', (address) => {
    expect(isDeniedAddress(address)).toBe(true);
  });

  it.each([['93.184.216.34'], ['8.8.8.8'], ['172.32.0.1'], ['100.128.0.1'], ['2606:4700::1111'], ['::ffff:93.184.216.34'], ['2001:db8::1'.replace('db8', '4860')]])('%s is allowed', (address) => {
    expect(isDeniedAddress(address)).toBe(false);
  });

  it('a refusal is EGRESS_DENIED and not retryable', async () => {
    const http = new HttpClient();
    const err = await http.send({ baseUrl: 'http://127.0.0.1:9', privateNetwork: false }, { method: 'GET', segments: ['x'], headers: {} }, 2000).then(
      () => undefined,
      (e: unknown) => e,
    );
    await http.close();
    expect(classifyError(err)).toMatchObject({ code: 'EGRESS_DENIED', retryable: false });
  });
});
