import { context, propagation, ProxyTracerProvider, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';

/**
 * OpenTelemetry tracing, off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-only
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Then `initTracing` registers a Node tracer
 * provider that batches spans to that collector over OTLP/HTTP (JSON); the exporter reads the
 * standard OTEL_EXPORTER_OTLP_* variables itself (headers, timeout, compression).
 *
 * When it is off, nothing is loaded or registered: `upshiftTracer()` is undefined and callers
 * skip span work altogether, so the hot path does not even allocate a no-op span. A host
 * application that registered its own provider (Upshift used as a library) gets Upshift's spans
 * in its traces too: `tracingActive()` sees any global provider.
 */

/** The instrumentation scope every Upshift span is created under. */
export const TRACER_NAME = 'upshift';

/** `service.name` of each process kind (OTEL_SERVICE_NAME overrides it). */
export type ServiceName = 'upshift-worker' | 'upshift-producer' | 'upshift-api';

interface Provider {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

let registered: Provider | undefined;

/** What the global API hands out while no provider is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

function endpointConfigured(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Registers the tracer provider when an OTLP endpoint is configured; returns whether tracing is
 * on. The SDK is imported only then, so a process without tracing never loads it. Idempotent.
 */
export async function initTracing(serviceName: ServiceName, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (registered) return true;
  if (!endpointConfigured(env)) return false;
  const [{ NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, { defaultResource, resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
  const provider = new NodeTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || serviceName })),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  provider.register();
  registered = provider;
  return true;
}

/** True when spans go somewhere: ours was registered, or the host application registered one. */
export function tracingActive(): boolean {
  if (registered) return true;
  const global = trace.getTracerProvider();
  return !(global instanceof ProxyTracerProvider) || global.getDelegate() !== NOOP_PROVIDER;
}

/** Upshift's tracer, or undefined when tracing is off (callers then do no span work at all). */
export function upshiftTracer(): Tracer | undefined {
  return tracingActive() ? trace.getTracer(TRACER_NAME) : undefined;
}

/** Sends the spans batched so far (a worker closing); never throws. */
export async function flushTracing(): Promise<void> {
  await registered?.forceFlush().catch(() => undefined);
}

/**
 * Flushes and stops the provider registered by `initTracing` (process exit) and unregisters it,
 * so a later `initTracing` starts afresh. Never throws: losing spans must not fail a command.
 */
export async function shutdownTracing(): Promise<void> {
  const provider = registered;
  if (!provider) return;
  registered = undefined;
  await provider.shutdown().catch(() => undefined);
  trace.disable();
  context.disable();
  propagation.disable();
}

/**
 * Runs `fn` inside an active span named `name` when tracing is on (`fn` gets the span to add
 * attributes to), or just runs it (with `undefined`) when off. A throw marks the span as an
 * error and is rethrown.
 */
export async function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  const tracer = upshiftTracer();
  if (!tracer) return fn(undefined);
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message ?? String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}
