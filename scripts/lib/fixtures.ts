/** A minimal Nected workflow graph the sandbox accepts, for tests and benchmarks. */
export function nectedGraph(name: string): Record<string, unknown> {
  return {
    name,
    description: 'original',
    startNode: '1',
    nodes: [{ id: '1', type: 'trigger', data: { nodeType: 'apiTrigger', name: 'Start' } }],
    edges: [],
    trigger: {},
    settings: { auditIO: false },
  };
}
