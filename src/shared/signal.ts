/**
 * The part of an abort signal that Upshift's own code reads (a run's lease signal, which
 * HttpClient.send listens to): `aborted`, `reason`, and 'abort' listeners. A DOM `AbortSignal` is one.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * An abort signal without EventTarget: one per run is on the hot path (a platform call needs none:
 * HttpClient.send aborts its own handler),
 * and an AbortController (an EventTarget, its signal made on first read) cost a twentieth of the
 * worker's CPU per target in the throughput profile, AbortSignal.timeout + AbortSignal.any a
 * tenth (weak references, GC). Listeners run once, in the order added; it aborts at most once.
 */
export class LightSignal implements AbortSignalLike {
  aborted = false;
  reason: unknown = undefined;
  // Nearly always one listener (the run's call in flight): no array until a second comes.
  private first: (() => void) | undefined;
  private more: (() => void)[] | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    // As an EventTarget: the same listener added twice is one listener.
    if (this.first === listener || this.more?.includes(listener)) return;
    if (this.first === undefined) this.first = listener;
    else (this.more ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.first === listener) this.first = this.more?.shift();
    else if (this.more) {
      const i = this.more.indexOf(listener);
      if (i >= 0) this.more.splice(i, 1);
    }
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const first = this.first;
    const more = this.more;
    this.first = undefined;
    this.more = undefined;
    // A listener that throws must not keep the others from running, nor stop the caller (the
    // lease keeper aborts every run past its deadline in one loop): rethrown on its own.
    call(first);
    if (more) for (const l of more) call(l);
  }
}

function call(listener: (() => void) | undefined): void {
  try {
    listener?.();
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}
