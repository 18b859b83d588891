import {
  classifyError,
  EVENT_ID_HEADER,
  isSuccess,
  redactValues,
  scrubError,
  SIGNATURE_HEADER,
  signatureHeader,
  type ConnectionRegistry,
  type HttpClient,
  type Logger,
  type NotifyClaim,
  type NotifyOutcome,
  type Scripts,
} from '../shared/index.js';
import type { NotificationOutcome } from './metrics/index.js';

export interface NotifierOptions {
  /** Deliveries this worker sends at once. */
  readonly concurrency: number;
  readonly timeoutMs: number;
  /** The wait after the first failed attempt, doubled after each one up to `maxBackoffMs`. */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** A delivery not delivered this long after its event is given up. */
  readonly maxAgeMs: number;
  /** A delivery being sent is due again this long after its timeout: another worker's takeover. */
  readonly leaseMarginMs: number;
  /** A notifier counts as having a sender this long after a worker that can send to it looked (DEFAULTS.notifySenderSeenMs). */
  readonly senderSeenMs?: number;
  /** A look for due deliveries at least this often, in case a wake-up was missed. */
  readonly sweepMs: number;
  readonly maxErrorChars: number;
}

/**
 * Delivers the webhook events the scheduler scripts recorded (scripts/includes/notify.lua): each
 * delivery waits in `<p>:sched:notify-due` until a worker takes it (notifyClaim-1.lua, which
 * also makes it due again when the taker's lease ends, so a worker killed mid-send loses
 * nothing) and ends it (notifyDone-1.lua: delivered, tried again after a backoff, or given up).
 *
 * Woken by the campaign events every state change publishes, and by a timer for the next due
 * delivery (a retry, a lease running out); the sweep only covers a wake-up missed while the
 * subscriber reconnected. It sends on its own HTTP client, at most `concurrency` at once, and
 * nothing of a campaign waits on it: a slow receiver holds a delivery slot, never a target.
 */
export class Notifier {
  private inFlight = 0;
  private pumping = false;
  private again = false;
  private closed = false;
  private wake: NodeJS.Timeout | undefined;
  private readonly sweep: NodeJS.Timeout;
  private readonly sending = new Set<Promise<void>>();

  constructor(
    private readonly scripts: Scripts,
    private readonly registry: ConnectionRegistry,
    private readonly http: HttpClient,
    private readonly log: Logger,
    private readonly count: (outcome: NotificationOutcome) => void,
    private readonly opts: NotifierOptions,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.sweep = setInterval(() => this.trigger(true), opts.sweepMs);
    this.sweep.unref();
  }

  /** The notifiers this worker can send to: registered here, with their secret set. */
  usable(): string[] {
    const notifiers = this.registry.notifiers ?? {};
    return Object.keys(notifiers).filter((name) => Boolean(this.env[notifiers[name]!.secretRef]));
  }

  /** Something may be due: look now (calls made while a look runs are folded into one more). */
  trigger(sweep = false): void {
    // A worker that can send to no notifier only sweeps: the look's upkeep (deliveries whose
    // data expired, or past the age limit) must happen even where no worker has a notifier left.
    if (this.closed || (!sweep && this.usable().length === 0)) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      if (this.again) {
        this.again = false;
        this.trigger();
      }
    });
  }

  private async pump(): Promise<void> {
    const free = this.opts.concurrency - this.inFlight;
    if (free <= 0) return; // a finishing delivery looks again
    try {
      const usable = this.usable();
      const { nowMs, nextDueMs, gaveUp, claims } = await this.scripts.notifyClaim(usable.length === 0 ? 0 : free, this.opts.timeoutMs + this.opts.leaseMarginMs, usable, {
        maxAgeMs: this.opts.maxAgeMs,
        senderSeenMs: this.opts.senderSeenMs,
      });
      for (let i = 0; i < gaveUp; i++) this.count('failed');
      if (gaveUp > 0) this.log.warn({ gaveUp }, 'webhook deliveries given up: not delivered within the age limit');
      for (const claim of claims) this.start(claim);
      if (claims.length === free) this.again = true;
      clearTimeout(this.wake);
      this.wake = undefined;
      if (nextDueMs !== null && !this.closed) {
        this.wake = setTimeout(() => this.trigger(), Math.max(0, nextDueMs - nowMs) + 1);
        this.wake.unref();
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not look for due webhook deliveries; the sweep tries again');
    }
  }

  private start(claim: NotifyClaim): void {
    this.inFlight++;
    const run = this.deliver(claim).finally(() => {
      this.inFlight--;
      this.sending.delete(run);
      this.trigger();
    });
    this.sending.add(run);
  }

  private async deliver(claim: NotifyClaim): Promise<void> {
    const { outcome, error } = await this.send(claim);
    const backoffMs = Math.min(this.opts.backoffMs * 2 ** Math.min(claim.attempts - 1, 30), this.opts.maxBackoffMs);
    const scrubbed = error === '' ? '' : scrubError(error, this.secrets(), this.opts.maxErrorChars);
    try {
      const done = await this.scripts.notifyDone(claim.member, claim.attempts, outcome, backoffMs, scrubbed, this.opts.maxAgeMs);
      if (done === 'not-due') return;
      this.count(done === 'delivered' ? 'delivered' : done === 'rescheduled' ? 'retried' : 'failed');
      const fields = { eventId: claim.eventId, notifier: claim.notifier, attempts: claim.attempts };
      if (done === 'gave-up') this.log.warn({ ...fields, err: scrubbed }, 'webhook delivery given up');
      else if (done === 'rescheduled') this.log.info({ ...fields, err: scrubbed, backoffMs }, 'webhook delivery failed; tried again later');
    } catch (err) {
      // The delivery stays due when its lease ends: another attempt, never a lost event.
      this.log.warn({ eventId: claim.eventId, err: (err as Error).message }, 'could not record a webhook delivery attempt');
    }
  }

  /** One attempt: the POST, signed now; what became of it and why (unscrubbed). */
  private async send(claim: NotifyClaim): Promise<{ outcome: NotifyOutcome; error: string }> {
    // The worker's own registry decides where a delivery goes and with which secret: the name
    // in Redis is only a name.
    const notifiers = this.registry.notifiers ?? {};
    const entry = Object.hasOwn(notifiers, claim.notifier) ? notifiers[claim.notifier] : undefined;
    if (entry === undefined) return { outcome: 'retry', error: `notifier "${claim.notifier}" is not registered on this worker` };
    const secret = this.env[entry.secretRef];
    if (!secret) return { outcome: 'retry', error: `the notifier's secret variable ${entry.secretRef} is not set on this worker` };
    const t = Math.floor(Date.now() / 1000);
    const signature = signatureHeader(secret, t, claim.body);
    try {
      const res = await this.http.send(
        { baseUrl: entry.url, privateNetwork: entry.privateNetwork },
        {
          method: 'POST',
          segments: [],
          headers: { [EVENT_ID_HEADER]: claim.eventId, [SIGNATURE_HEADER]: signature, 'user-agent': 'upshift-webhooks' },
          rawJson: claim.body,
        },
        this.opts.timeoutMs,
      );
      if (isSuccess(res.status)) return { outcome: 'delivered', error: '' };
      // Any other answer, a redirect included (never followed), is a failed attempt. A receiver
      // (or a proxy) that echoes the request puts this attempt's signature in its answer: stored
      // and shown by the API and dashboard, it could be replayed within the receiver's tolerance.
      // So the signature (and the secret) go before the cut, which could leave part of either.
      const text = res.text ? redactValues(res.text, [signature, signature.slice(signature.indexOf('v1=') + 3), secret]) : '';
      return { outcome: 'retry', error: `HTTP ${res.status}${text ? ` ${text.slice(0, 200)}` : ''}` };
    } catch (err) {
      const c = classifyError(err);
      // A refused address stays refused: trying it for 24 h would change nothing.
      if (c.code === 'EGRESS_DENIED') return { outcome: 'failed', error: `EGRESS_DENIED: ${c.message}` };
      return { outcome: 'retry', error: `${c.code}: ${c.message}` };
    }
  }

  private secrets(): string[] {
    const out: string[] = [];
    for (const n of Object.values(this.registry.notifiers ?? {})) {
      const v = this.env[n.secretRef];
      if (v) out.push(v);
    }
    return out;
  }

  /** Takes no new delivery; waits for those being sent (bounded by their timeout). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweep);
    clearTimeout(this.wake);
    await Promise.allSettled([...this.sending]);
  }
}
