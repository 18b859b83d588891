/**
 * The baseline of the throughput benchmark: a plain BullMQ Worker whose processor makes one
 * undici request to the same sandbox endpoint Upshift calls. No limits, no status, no outcome
 * records. Prints `bare worker ready`, then `done <ms>` after `N` completions, and exits.
 */
import { Worker } from 'bullmq';
import { Agent, request } from 'undici';

const [url, queueName, prefix, concurrencyArg, countArg, key] = process.argv.slice(2);
const total = Number(countArg);
const agent = new Agent({ keepAliveTimeout: 30_000 });
let done = 0;
let started = 0;

const worker = new Worker(
  queueName!,
  async (job) => {
    const res = await request(`${url}/workflows/wf-bench/upgrade?userId=${encodeURIComponent(job.data.userId)}`, {
      dispatcher: agent,
      method: 'PUT',
      headers: { authorization: `bearer ${key}`, 'x-api-version': '2025-09' },
    });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  },
  { connection: { url: process.env.REDIS_URL!, maxRetriesPerRequest: null } as never, prefix, concurrency: Number(concurrencyArg), autorun: false },
);
worker.on('completed', () => {
  if (++done === total) {
    console.log(`done ${Date.now() - started}`);
    void worker.close().then(() => process.exit(0));
  }
});
await worker.waitUntilReady();
console.log('bare worker ready');
started = Date.now();
void worker.run();
