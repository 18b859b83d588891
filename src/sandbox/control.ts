/**
 * `/__sandbox/*`: the control plane for the CLI and the demo, over HTTP. Never faulted, never
 * delayed, never counted in the stats: it is not part of any platform.
 */
import { parseJson, type Reply } from './http.js';

export interface ControlTarget {
  load(fixtures: unknown): void;
  reset(): void;
  configure(config: unknown): void;
  stats(): unknown;
  state(): unknown;
}

const ok = (body?: unknown): Reply => (body === undefined ? { status: 204 } : { status: 200, body });

/** Runs a control action; a thrown validation error becomes a 400 with its message. */
function attempt(action: () => void): Reply {
  try {
    action();
    return ok();
  } catch (err) {
    return { status: 400, body: { message: (err as Error).message } };
  }
}

function withJson(body: string, use: (value: unknown) => void): Reply {
  const parsed = parseJson(body);
  return parsed.ok ? attempt(() => use(parsed.value)) : { status: 400, body: { message: parsed.message } };
}

const ROUTES: Record<string, Record<string, (target: ControlTarget, body: string) => Reply>> = {
  fixtures: { POST: (t, body) => withJson(body, (v) => t.load(v)) },
  reset: { POST: (t) => attempt(() => t.reset()) },
  config: { POST: (t, body) => withJson(body, (v) => t.configure(v)) },
  stats: { GET: (t) => ok(t.stats()) },
  state: { GET: (t) => ok(t.state()) },
};

export function controlAnswer(target: ControlTarget, method: string, rawPath: string, body: string): Reply {
  const name = rawPath.slice('/__sandbox/'.length);
  const methods = Object.hasOwn(ROUTES, name) ? ROUTES[name] : undefined;
  if (!methods) return { status: 404, body: { message: 'no route' } };
  const run = Object.hasOwn(methods, method) ? methods[method] : undefined;
  if (!run) return { status: 405, body: { message: 'method not allowed' }, headers: { allow: Object.keys(methods).join(', ') } };
  return run(target, body);
}
