/**
 * The state of one sandbox: one part per registered platform (./platforms.ts), each keeping its
 * records the way that platform looks them up. Fixtures are its public shape: `load()` takes
 * them, `snapshot()` returns them.
 */
import { z } from 'zod';
import { sandboxPlatforms, type BoundRoute, type PlatformInstance, type SandboxFixtures, type SharedEnv } from './platforms.js';

export type { SandboxFixtures } from './platforms.js';

export class SandboxState {
  private readonly platforms: readonly PlatformInstance[];
  /** Strict: an unknown platform or field is a typo the caller should hear about. */
  private readonly fixturesSchema: z.ZodType<Record<string, (() => void) | undefined>>;

  constructor(shared: SharedEnv, keys: Readonly<Record<string, string>>) {
    this.platforms = sandboxPlatforms().map((p) => p.instantiate(shared, keys[p.name] ?? p.defaultKey));
    this.fixturesSchema = z.strictObject(Object.fromEntries(this.platforms.map((p) => [p.name, p.fixtures.optional()])));
  }

  /** Every platform's routes, in table order (the first matching pattern wins). */
  routes(): BoundRoute[] {
    return this.platforms.flatMap((p) => p.routes);
  }

  /** Adds or replaces records (by their lookup key); nothing is loaded unless all of `input` is valid. */
  load(input: unknown): void {
    const parsed = this.fixturesSchema.safeParse(input);
    if (!parsed.success) throw new Error(`invalid sandbox fixtures: ${z.prettifyError(parsed.error)}`);
    for (const p of this.platforms) parsed.data[p.name]?.();
  }

  clear(): void {
    for (const p of this.platforms) p.clear();
  }

  /** A deep copy in fixture shape (loading it into an empty sandbox gives the same state). */
  snapshot(): SandboxFixtures {
    // Each section is what that platform's `snapshot()` returns: its own fixtures type.
    return structuredClone(Object.fromEntries(this.platforms.map((p) => [p.name, p.snapshot()]))) as SandboxFixtures;
  }
}
