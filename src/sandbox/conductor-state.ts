/** Conductor's part of the sandbox state: executions by id, definitions by name and version. */
import { z } from 'zod';

export type ConductorStatus = 'RUNNING' | 'PAUSED' | 'COMPLETED' | 'FAILED' | 'TIMED_OUT' | 'TERMINATED';

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

export interface ConductorFixtures {
  executions?: ConductorExecutionFixture[];
  definitions?: ConductorDefinitionFixture[];
}

const jsonObject = z.record(z.string(), z.unknown());
const int = z.number().int();

export const fixtures: z.ZodType<ConductorFixtures> = z.strictObject({
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
});

/** Internal record of an execution: the fixture plus times the GET answer shows. */
export interface ConductorExecution extends ConductorExecutionFixture {
  input: Record<string, unknown>;
  taskOutput: Record<string, unknown>;
  createTime: number;
  updateTime: number;
}

export class ConductorState {
  /** execution id -> execution */
  readonly executions = new Map<string, ConductorExecution>();
  /** name -> version -> definition */
  private readonly definitions = new Map<string, Map<number, ConductorDefinitionFixture>>();

  load(f: ConductorFixtures): void {
    const now = Date.now();
    for (const e of f.executions ?? []) {
      this.executions.set(e.workflowId, {
        ...e,
        input: e.input ?? {},
        taskOutput: e.taskOutput ?? {},
        createTime: now,
        updateTime: now,
      });
    }
    for (const d of f.definitions ?? []) this.putDefinition(d);
  }

  clear(): void {
    this.executions.clear();
    this.definitions.clear();
  }

  /** Unlike `load(snapshot())`, keeps each execution's create and update times. */
  checkpoint(): () => void {
    const executions = structuredClone(this.executions);
    const definitions = structuredClone(this.definitions);
    return () => {
      this.clear();
      for (const [id, e] of executions) this.executions.set(id, e);
      for (const [name, byVersion] of definitions) this.definitions.set(name, byVersion);
    };
  }

  snapshot(): ConductorFixtures {
    const executions = [...this.executions.values()].map(
      ({ createTime: _c, updateTime: _u, ...e }): ConductorExecutionFixture => e,
    );
    const definitions = [...this.definitions.values()].flatMap((byVersion) => [...byVersion.values()]);
    return { executions, definitions };
  }

  getDefinition(name: string, version?: number): ConductorDefinitionFixture | undefined {
    const byVersion = this.definitions.get(name);
    if (!byVersion) return undefined;
    return byVersion.get(version ?? this.latestDefinitionVersion(name) ?? Number.NaN);
  }

  latestDefinitionVersion(name: string): number | undefined {
    const versions = [...(this.definitions.get(name)?.keys() ?? [])];
    return versions.length === 0 ? undefined : Math.max(...versions);
  }

  putDefinition(def: ConductorDefinitionFixture): void {
    let byVersion = this.definitions.get(def.name);
    if (!byVersion) this.definitions.set(def.name, (byVersion = new Map()));
    byVersion.set(def.version, def);
  }
}
