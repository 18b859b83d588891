/**
 * Preloaded into worker processes by tests (`NODE_OPTIONS=--import`, see `sendLogEnv` in
 * fleet.ts): one line per platform request at the moment undici writes it to its socket, from
 * undici's own `undici:client:sendHeaders` diagnostics channel (published right before the
 * write), so a test sees when each call started from outside Upshift's code. Each process
 * writes its own file, `<UPSHIFT_TEST_SEND_LOG>/<pid>.ndjson`, line by line (a SIGKILLed worker
 * loses nothing already written).
 */
import { subscribe } from 'node:diagnostics_channel';
import { openSync, writeSync } from 'node:fs';

const dir = process.env.UPSHIFT_TEST_SEND_LOG;
if (dir) {
  const fd = openSync(`${dir}/${process.pid}.ndjson`, 'a');
  subscribe('undici:client:sendHeaders', ({ request }) => {
    const body = Buffer.isBuffer(request.body) ? request.body.toString('utf8', 0, 1000) : '';
    writeSync(fd, JSON.stringify({ at: Date.now(), method: request.method, path: request.path, body }) + '\n');
  });
}
