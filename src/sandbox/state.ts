import { createHash } from 'node:crypto';
import { z } from 'zod';

/* ------------------------------------------------------------------------------------------------
 * Fixtures: the public shape of the sandbox state. `load()` takes it, `state()` returns it.
 * ---------------------------------------------------------------------------------------------- */

export type ConductorStatus = 'RUNNING' | 'PAUSED' | 'COMPLETED' | 'FAILED' | 'TIMED_OUT' | 'TERMINATED';

export interface AlloyInstallFixture {
  workflowId: string;
  userId: string;
  version: number;
  /** The new version added configurable fields: Alloy refuses with 400 and the user must reinstall. */
  reinstallRequired?: boolean;
  /** The key may not touch this install: 403. */
  forbidden?: boolean;
}

export interface ConductorExecutionFixture {
  /** The execution id (Conductor calls it workflowId). */
  workflowId: string;
  workflowName: string;
  workflowVersion: number;
  status: ConductorStatus;
  input?: Record<string, unknown>;
  /** Outputs given to skipped tasks by upgrades, by task reference name. */
  taskOutput?: Record<string, unknown>;
}

/** A workflow definition as Conductor stores it (full JSON). */
export type ConductorDefinitionFixture = Record<string, unknown> & { name: string; version: number };

export interface TallyfyRunFixture {
  orgId: string;
  id: string;
  name: string;
  summary?: string;
  owner_id?: number;
  tags?: string[];
  folders?: string[];
  prerun?: unknown[];
  /** The key may not update this run: 403. */
  forbidden?: boolean;
  /** Set by the sandbox on every update (ISO time). */
  last_updated?: string;
}

export interface NectedWorkflowFixture {
  entityId: string;
  /** `Nected-Branch` header value; absent or "" = default branch. */
  branch?: string;
  /** name, description, startNode, nodes, edges, trigger, settings, ... (no checksum, no entityId). */
  graph: Record<string, unknown>;
  /** Computed from the graph when absent. */
  checksum?: string;
}

export interface SandboxFixtures {
  alloy?: {
    workflows?: Record<string, { latestVersion: number }>;
    installs?: AlloyInstallFixture[];
  };
  conductor?: {
    executions?: ConductorExecutionFixture[];
    definitions?: ConductorDefinitionFixture[];
  };
  tallyfy?: { runs?: TallyfyRunFixture[] };
  nected?: { workflows?: NectedWorkflowFixture[] };
}

const jsonObject = z.record(z.string(), z.unknown());
const int = z.number().int();

/** Validates fixtures coming over HTTP (`POST /__sandbox/fixtures`) or from `load()`. */
export const fixturesSchema: z.ZodType<SandboxFixtures> = z.strictObject({
  alloy: z
    .strictObject({
      workflows: z.record(z.string(), z.strictObject({ latestVersion: int })).optional(),
      installs: z
        .array(
          z.strictObject({
            workflowId: z.string(),
            userId: z.string(),
            version: int,
            reinstallRequired: z.boolean().optional(),
            forbidden: z.boolean().optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  conductor: z
    .strictObject({
      executions: z
        .array(
          z.strictObject({
            workflowId: z.string(),
            workflowName: z.string(),
            workflowVersion: int,
            status: z.enum(['RUNNING', 'PAUSED', 'COMPLETED', 'FAILED', 'TIMED_OUT', 'TERMINATED']),
            input: jsonObject.optional(),
            taskOutput: jsonObject.optional(),
          }),
        )
        .optional(),
      definitions: z.array(z.looseObject({ name: z.string(), version: int })).optional(),
    })
    .optional(),
  tallyfy: z
    .strictObject({
      runs: z
        .array(
          z.strictObject({
            orgId: z.string(),
            id: z.string(),
            name: z.string(),
            summary: z.string().optional(),
            owner_id: int.optional(),
            tags: z.array(z.string()).optional(),
            folders: z.array(z.string()).optional(),
            prerun: z.array(z.unknown()).optional(),
            forbidden: z.boolean().optional(),
            last_updated: z.string().optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  nected: z
    .strictObject({
      workflows: z
        .array(
          z.strictObject({
            entityId: z.string(),
            branch: z.string().optional(),
            graph: jsonObject,
            checksum: z.string().optional(),
          }),
        )
        .optional(),
    })
    .optional(),
});

export function parseFixtures(input: unknown): SandboxFixtures {
  const parsed = fixturesSchema.safeParse(input);
  if (!parsed.success) throw new Error(`invalid sandbox fixtures: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/* ------------------------------------------------------------------------------------------------
 * Internal state: maps keyed the way each platform looks things up.
 * ---------------------------------------------------------------------------------------------- */

/** Internal record of a Conductor execution: the fixture plus times the GET answer shows. */
export interface ConductorExecution extends ConductorExecutionFixture {
  input: Record<string, unknown>;
  taskOutput: Record<string, unknown>;
  createTime: number;
  updateTime: number;
}

export interface NectedWorkflow {
  entityId: string;
  branch: string;
  graph: Record<string, unknown>;
  checksum: string;
}

/**
 * A key made of several ids. JSON of an array, because ids may contain any character
 * (a separator like ':' or '/' could make two different pairs collide).
 */
export function compositeKey(...parts: string[]): string {
  return JSON.stringify(parts);
}

export class SandboxState {
  readonly alloyWorkflows = new Map<string, { latestVersion: number }>();
  /** compositeKey(workflowId, userId) -> install */
  readonly alloyInstalls = new Map<string, AlloyInstallFixture>();
  /** execution id -> execution */
  readonly conductorExecutions = new Map<string, ConductorExecution>();
  /** name -> version -> definition */
  readonly conductorDefinitions = new Map<string, Map<number, ConductorDefinitionFixture>>();
  /** compositeKey(orgId, runId) -> run */
  readonly tallyfyRuns = new Map<string, TallyfyRunFixture>();
  /** compositeKey(branch, entityId) -> workflow */
  readonly nectedWorkflows = new Map<string, NectedWorkflow>();

  /**
   * Feeds every Nected checksum. Never reset, so a checksum once handed out is never handed out
   * again for a different revision, even across `reset()`/`load()` (a client holding an old one
   * must always be refused).
   */
  private revision = 0;

  /** Adds or replaces records (by their lookup key). Inputs are copied: later caller edits do not leak in. */
  load(input: SandboxFixtures): void {
    const f = structuredClone(parseFixtures(input));
    for (const [id, wf] of Object.entries(f.alloy?.workflows ?? {})) this.alloyWorkflows.set(id, wf);
    for (const i of f.alloy?.installs ?? []) this.alloyInstalls.set(compositeKey(i.workflowId, i.userId), i);

    const now = Date.now();
    for (const e of f.conductor?.executions ?? []) {
      this.conductorExecutions.set(e.workflowId, {
        ...e,
        input: e.input ?? {},
        taskOutput: e.taskOutput ?? {},
        createTime: now,
        updateTime: now,
      });
    }
    for (const d of f.conductor?.definitions ?? []) this.putDefinition(d);

    for (const r of f.tallyfy?.runs ?? []) this.tallyfyRuns.set(compositeKey(r.orgId, r.id), r);

    for (const w of f.nected?.workflows ?? []) {
      const branch = w.branch ?? '';
      const graph = stripNectedMeta(w.graph);
      const checksum = w.checksum ?? this.nextChecksum(graph);
      this.nectedWorkflows.set(compositeKey(branch, w.entityId), { entityId: w.entityId, branch, graph, checksum });
    }
  }

  clear(): void {
    this.alloyWorkflows.clear();
    this.alloyInstalls.clear();
    this.conductorExecutions.clear();
    this.conductorDefinitions.clear();
    this.tallyfyRuns.clear();
    this.nectedWorkflows.clear();
  }

  /** A deep copy in fixture shape (loading it into an empty sandbox gives the same state). */
  snapshot(): SandboxFixtures {
    const executions = [...this.conductorExecutions.values()].map(
      ({ createTime: _c, updateTime: _u, ...e }): ConductorExecutionFixture => e,
    );
    const definitions = [...this.conductorDefinitions.values()].flatMap((byVersion) => [...byVersion.values()]);
    return structuredClone({
      alloy: { workflows: Object.fromEntries(this.alloyWorkflows), installs: [...this.alloyInstalls.values()] },
      conductor: { executions, definitions },
      tallyfy: { runs: [...this.tallyfyRuns.values()] },
      nected: { workflows: [...this.nectedWorkflows.values()] },
    });
  }

  /* Conductor definitions ------------------------------------------------------------------ */

  getDefinition(name: string, version?: number): ConductorDefinitionFixture | undefined {
    const byVersion = this.conductorDefinitions.get(name);
    if (!byVersion) return undefined;
    return byVersion.get(version ?? this.latestDefinitionVersion(name) ?? Number.NaN);
  }

  latestDefinitionVersion(name: string): number | undefined {
    const versions = [...(this.conductorDefinitions.get(name)?.keys() ?? [])];
    return versions.length === 0 ? undefined : Math.max(...versions);
  }

  putDefinition(def: ConductorDefinitionFixture): void {
    let byVersion = this.conductorDefinitions.get(def.name);
    if (!byVersion) this.conductorDefinitions.set(def.name, (byVersion = new Map()));
    byVersion.set(def.version, def);
  }

  /* Nected checksums ----------------------------------------------------------------------- */

  /** sha256 of the graph plus a revision number: it changes on every write, even an identical one. */
  nextChecksum(graph: Record<string, unknown>): string {
    this.revision += 1;
    return createHash('sha256').update(`${JSON.stringify(graph)}\n${this.revision}`).digest('hex');
  }
}

/** Nected returns entityId and checksum beside the graph; they are not part of the stored graph. */
export function stripNectedMeta(doc: Record<string, unknown>): Record<string, unknown> {
  const { checksum: _checksum, entityId: _entityId, ...graph } = doc;
  return graph;
}
