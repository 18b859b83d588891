import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient, NotSentError, type HttpRequest } from '../../src/shared/index.js';
import { PauseBoard } from '../../src/worker/pauses.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('HttpClient send gate', () => {
  let server: Server;
  let base: string;
  let requests = 0;
  let connections = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++;
      req.resume();
      req.on('end', () => res.end('{}'));
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('asks the gate at the write: a closed gate sends nothing and keeps the socket', async () => {
    const http = new HttpClient();
    const get: HttpRequest = { method: 'GET', segments: ['a'], headers: {} };
    const put: HttpRequest = { method: 'PUT', segments: ['a'], headers: {}, json: { v: 2 } };
    let asked = 0;
    expect((await http.send({ baseUrl: base, privateNetwork: true }, get, 1000, undefined, () => (asked++, true))).status).toBe(200);
    expect(asked).toBe(1);
    const before = { requests, connections };
    for (const req of [get, put]) {
      await expect(http.send({ baseUrl: base, privateNetwork: true }, req, 1000, undefined, () => false)).rejects.toBeInstanceOf(NotSentError);
    }
    await sleep(50);
    expect(requests).toBe(before.requests);
    // Held requests leave their socket open and unused: the next call goes out on one of them.
    const open = connections;
    expect((await http.send({ baseUrl: base, privateNetwork: true }, put, 1000, undefined, () => true)).status).toBe(200);
    expect((await http.send({ baseUrl: base, privateNetwork: true }, get, 1000)).status).toBe(200);
    expect(connections).toBe(open);
    expect(requests).toBe(before.requests + 2);
    await http.close();
  });
});

describe('PauseBoard', () => {
  const conn = 'https://api.example.com#KEY';

  it('opens only within gateMs of a word from Redis that the connection is not paused', async () => {
    const asked: number[] = [];
    const board = new PauseBoard(async () => {
      asked.push(performance.now());
      return { nowMs: 1000, untilMs: 0 };
    }, 40);
    expect(board.open(conn)).toBe(false); // never heard from Redis
    board.unpaused(conn, performance.now());
    expect(board.open(conn)).toBe(true);
    await sleep(60);
    expect(board.open(conn)).toBe(false); // the word is stale
    await board.clear(conn);
    expect(asked).toHaveLength(1);
    expect(board.open(conn)).toBe(true);
  });

  it('holds a noted pause to its end, then asks Redis, whose clock decides', async () => {
    let answers = [{ nowMs: 5000, untilMs: 5080 }, { nowMs: 5080, untilMs: 0 }];
    let asks = 0;
    const board = new PauseBoard(async () => {
      asks++;
      return answers.shift()!;
    }, 1000);
    board.unpaused(conn, performance.now());
    // Measured from before the event is read: the pause runs 60 ms from that read, so time spent
    // between the read and the wait (a busy machine) is part of it, not extra.
    const from = performance.now();
    board.note(conn, 2060, 2000); // a pause event: 60 ms from when it was read
    expect(board.open(conn)).toBe(false);
    await board.clear(conn);
    // 60 ms for the event, then Redis said 80 ms more, then Redis said it was over (each timer
    // may fire up to a millisecond early by the event loop's whole-millisecond clock).
    expect(performance.now() - from).toBeGreaterThanOrEqual(135);
    expect(asks).toBe(2);
    expect(board.open(conn)).toBe(true);
    answers = [];
  });

  it('shares one question to Redis between calls waiting on the same connection', async () => {
    let asks = 0;
    const board = new PauseBoard(async () => {
      asks++;
      await sleep(10);
      return { nowMs: 1, untilMs: 0 };
    }, 1000);
    await Promise.all([board.clear(conn), board.clear(conn), board.clear(conn)]);
    expect(asks).toBe(1);
  });

  it('keeps asking while Redis cannot answer, and gives up when the lease is lost', async () => {
    const lost = new AbortController();
    let asks = 0;
    const board = new PauseBoard(async () => {
      asks++;
      throw new Error('Connection is closed.');
    }, 1000, 10);
    setTimeout(() => lost.abort(new Error('lease lost')), 60);
    await expect(board.clear(conn, lost.signal)).rejects.toThrow('lease lost');
    expect(asks).toBeGreaterThanOrEqual(3);
    expect(board.open(conn)).toBe(false);
  });
});
