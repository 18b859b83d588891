/**
 * The sandbox's platform table and registry. Each platform is one module exporting a
 * `SandboxPlatform` (./http.ts); the server, the state, the options and the fixtures loop over
 * what is registered here and know no platform by name.
 */
import type { z } from 'zod';
import { alloySandbox } from './alloy.js';
import { conductorSandbox } from './conductor.js';
import type { HandlerEnv, Operation, PlatformConfig, PlatformRequest, Reply, SandboxPlatform } from './http.js';
import { nectedSandbox } from './nected.js';
import { tallyfySandbox } from './tallyfy.js';

/** One row per platform (docs/ARCHITECTURE.md, "How to add a platform"). */
export const SANDBOX_PLATFORMS = [alloySandbox, conductorSandbox, tallyfySandbox, nectedSandbox] as const;

type Builtin = (typeof SANDBOX_PLATFORMS)[number];
export type SandboxPlatformName = Builtin['name'];

/**
 * The public shape of the sandbox state: `load()` takes it, `state()` returns it, one section per
 * platform. A platform registered at runtime has a section of its own (checked by its schema).
 */
export type SandboxFixtures = { [P in Builtin as P['name']]?: z.output<P['fixtures']> } & {
  readonly [platform: string]: unknown;
};

/** The API keys the sandbox accepts by default, one per platform. Not secrets: test values. */
export const SANDBOX_KEYS = Object.freeze(Object.fromEntries(SANDBOX_PLATFORMS.map((p) => [p.name, p.defaultKey]))) as {
  readonly [P in Builtin as P['name']]: string;
};

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

/** The table's platforms' own options, all together (their names do not clash). */
export type PlatformOptions = UnionToIntersection<OptionsOf<Builtin>>;
type OptionsOf<P> = P extends { readonly config?: PlatformConfig<infer C> } ? C : never;

/** What every platform's handlers share: the sandbox's config (every platform's options in it), faults and counters. */
export type SharedEnv = Omit<HandlerEnv<unknown, Record<string, unknown>>, 'state' | 'key'>;

export interface BoundOperation {
  /**
   * `drop` (a `dropWriteRate` draw): run the handler as usual, but with `applied` counting
   * nothing, and put this platform's state back as it was when the answer is 2xx.
   */
  handle(req: PlatformRequest, drop?: boolean): Reply;
  target?(req: PlatformRequest): string | undefined;
}

/** A platform route bound to one sandbox's state of that platform. */
export interface BoundRoute {
  readonly pattern: readonly string[];
  readonly methods: Readonly<Record<string, BoundOperation>>;
  error(status: number, message: string): unknown;
}

/** One platform inside one running sandbox. */
export interface PlatformInstance {
  readonly name: string;
  readonly routes: readonly BoundRoute[];
  /** Parses this platform's fixtures section into the action that loads it (run once all are valid). */
  readonly fixtures: z.ZodType<() => void>;
  clear(): void;
  snapshot(): unknown;
}

interface Registered {
  readonly name: string;
  readonly defaultKey: string;
  readonly configShape: z.ZodRawShape;
  readonly configDefaults: Readonly<Record<string, unknown>>;
  instantiate(shared: SharedEnv, key: string): PlatformInstance;
}

const registry: Registered[] = [];

/**
 * Adds a platform to every sandbox started afterwards: its routes are served, its fixtures
 * section loaded and shown, its key accepted under `keys[name]`. The rows of `SANDBOX_PLATFORMS`
 * come in through here too.
 */
export function registerSandboxPlatform<S, F, C extends object>(platform: SandboxPlatform<string, S, F, C>): void {
  if (registry.some((r) => r.name === platform.name)) throw new Error(`sandbox platform ${platform.name} is already registered`);
  const configShape: z.ZodRawShape = { ...platform.config?.shape };
  const taken = registry.flatMap((r) => Object.keys(r.configShape)).filter((k) => Object.hasOwn(configShape, k));
  if (taken.length > 0) throw new Error(`sandbox platform ${platform.name}: options ${taken.join(', ')} are another platform's`);
  registry.push({
    name: platform.name,
    defaultKey: platform.defaultKey,
    configShape,
    configDefaults: { ...platform.config?.defaults },
    instantiate: (shared, key) => instantiate(platform, shared, key),
  });
}

// Each row's state and handlers come from the row itself, so registering it with its state and
// fixture types erased (TypeScript cannot infer them from the union of rows) loses nothing.
for (const p of SANDBOX_PLATFORMS) registerSandboxPlatform<unknown, unknown, object>(p);

export function sandboxPlatforms(): readonly Registered[] {
  return registry;
}

function instantiate<S, F, C extends object>(p: SandboxPlatform<string, S, F, C>, shared: SharedEnv, key: string): PlatformInstance {
  const state = p.createState();
  // The sandbox's config holds every registered platform's options, parsed by their shapes.
  const env: HandlerEnv<S, C> = { ...shared, config: shared.config as HandlerEnv<S, C>['config'], state, key };
  const droppingEnv: HandlerEnv<S, C> = { ...env, applied: () => {} };
  const checkpoint = (): (() => void) => {
    if (p.checkpoint) return p.checkpoint(state);
    // Copied before the handler runs: it may change the very records the snapshot shares.
    const before = structuredClone(p.snapshot(state));
    return () => {
      p.clear(state);
      p.load(state, before);
    };
  };
  const handle = (op: Operation<S, C>, req: PlatformRequest, drop: boolean): Reply => {
    if (!drop) return op.handle(req, env);
    const restore = checkpoint();
    const reply = op.handle(req, droppingEnv);
    if (reply.status >= 200 && reply.status < 300) restore();
    return reply;
  };
  return {
    name: p.name,
    routes: p.routes.map((route) => ({
      pattern: route.pattern,
      error: p.error,
      methods: Object.fromEntries(
        Object.entries(route.methods).map(([method, op]): [string, BoundOperation] => [
          method,
          { handle: (req, drop = false) => handle(op, req, drop), ...(op.target ? { target: (req) => op.target!(req) } : {}) },
        ]),
      ),
    })),
    // Copied: later caller edits must not leak into the sandbox.
    fixtures: p.fixtures.transform((f) => () => p.load(state, structuredClone(f))),
    clear: () => p.clear(state),
    snapshot: () => p.snapshot(state),
  };
}
