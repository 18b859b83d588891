// The Upshift dashboard: polls the API once a second (after the previous refresh finished, so
// slow answers never pile up) and renders every campaign. Everything shown is set with
// textContent, never as HTML: names, reasons and limit keys come from users' specs.
'use strict';

(() => {
  const REFRESH_INTERVAL_MS = 1000;
  /** Rate is measured over this much history, so one slow second does not swing the ETA. */
  const RATE_WINDOW_MS = 10_000;
  const MAX_KEYS_SHOWN = 10;
  const MAX_DELIVERIES_SHOWN = 10;
  /** Delivery lists read at once in one refresh (only campaigns whose deliveries changed are read). */
  const DELIVERY_READS_AT_ONCE = 4;
  const COOKIE = 'upshift_token';
  const ENDED = new Set(['completed', 'cancelled']);
  const LABELS = {
    real: { upgraded: 'upgraded', skipped: 'skipped', failed: 'failed' },
    dryRun: { upgraded: 'would upgrade', skipped: 'would skip', failed: 'would fail' },
  };

  const $ = (id) => document.getElementById(id);
  const list = $('campaigns');
  const template = $('campaign-template');
  const cards = new Map(); // campaign id -> { el, samples: [{ atMs, done }] }
  let timer;
  let signedOut = false;
  let tokenEntered = false;
  let inFlight = false;
  let again = false;

  // --- token ---------------------------------------------------------------------------------

  function setToken(token) {
    const secure = location.protocol === 'https:' ? '; Secure' : '';
    document.cookie = `${COOKIE}=${encodeURIComponent(token)}; Path=/; SameSite=Strict${secure}`;
  }

  function clearToken() {
    document.cookie = `${COOKIE}=; Path=/; Max-Age=0; SameSite=Strict`;
  }

  function showLogin(error) {
    signedOut = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    $('login-error').textContent = error || '';
    $('token').focus();
  }

  $('login').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    if (token === '') return;
    setToken(token);
    $('token').value = '';
    $('login').hidden = true;
    signedOut = false;
    tokenEntered = true;
    $('login-error').textContent = '';
    refreshNow();
  });

  $('logout').addEventListener('click', () => {
    clearToken();
    for (const { el } of cards.values()) el.remove();
    cards.clear();
    showLogin('');
  });

  // --- API -----------------------------------------------------------------------------------

  class Unauthorized extends Error {}

  async function api(method, path) {
    const res = await fetch(path, { method, credentials: 'same-origin', headers: { accept: 'application/json' } });
    if (res.status === 401) throw new Unauthorized();
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.message || `${method} ${path}: HTTP ${res.status}`);
    return body;
  }

  // --- formatting ----------------------------------------------------------------------------

  const fmt = (n) => Number(n).toLocaleString('en-US');

  function duration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return '—';
    const s = Math.round(seconds);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }

  /** The figures shown: a dry run's would-* counters stand in for the real ones. */
  function outcomes(c) {
    return c.dryRun
      ? { upgraded: c.wouldUpgrade, skipped: c.wouldSkip, failed: c.wouldFail }
      : { upgraded: c.upgraded, skipped: c.skipped, failed: c.failed };
  }

  // --- rendering -----------------------------------------------------------------------------

  function field(el, name) {
    return el.querySelector(`[data-field="${name}"]`);
  }

  function card(c) {
    let entry = cards.get(c.id);
    if (!entry) {
      const el = template.content.firstElementChild.cloneNode(true);
      el.dataset.campaignId = c.id;
      for (const button of el.querySelectorAll('[data-action]')) {
        button.addEventListener('click', () => act(c.id, button.dataset.action, button));
      }
      entry = { el, samples: [], deliveries: null, deliveriesChanges: -1 };
      cards.set(c.id, entry);
    }
    return entry;
  }

  /** Done per second over the last RATE_WINDOW_MS of refreshes; null until there are two. */
  function rateOf(entry, done, nowMs) {
    const samples = entry.samples;
    // A retry takes outcomes back: the history no longer describes this run.
    if (samples.length > 0 && done < samples[samples.length - 1].done) samples.length = 0;
    samples.push({ atMs: nowMs, done });
    while (samples.length > 2 && nowMs - samples[0].atMs > RATE_WINDOW_MS) samples.shift();
    const first = samples[0];
    const spanMs = nowMs - first.atMs;
    return spanMs <= 0 ? null : ((done - first.done) * 1000) / spanMs;
  }

  function render(c, usage, deliveries, nowMs) {
    const entry = card(c);
    const el = entry.el;
    const o = outcomes(c);
    const done = o.upgraded + o.skipped + o.failed;
    const total = c.total;

    field(el, 'id').textContent = c.id;
    field(el, 'name').textContent = c.name || '';
    field(el, 'operation').textContent = c.operation;
    field(el, 'dryRun').hidden = !c.dryRun;
    const state = field(el, 'state');
    state.textContent = c.state;
    state.dataset.state = c.state;
    const labels = c.dryRun ? LABELS.dryRun : LABELS.real;
    for (const label of el.querySelectorAll('[data-label]')) label.textContent = labels[label.dataset.label];
    for (const name of ['upgraded', 'skipped', 'failed']) field(el, name).textContent = fmt(o[name]);
    for (const name of ['pending', 'active', 'total', 'retries']) field(el, name).textContent = fmt(c[name]);
    field(el, 'percent').textContent = total === 0 ? '100%' : `${Math.floor((done / total) * 100)}%`;

    const segs = el.querySelectorAll('.bar .seg');
    ['upgraded', 'skipped', 'failed'].forEach((name, i) => {
      segs[i].style.width = total === 0 ? '0%' : `${(o[name] / total) * 100}%`;
    });
    field(el, 'bar').setAttribute('aria-label', `${fmt(o.upgraded)} upgraded, ${fmt(o.skipped)} skipped, ${fmt(o.failed)} failed of ${fmt(total)}`);

    const rate = rateOf(entry, done, nowMs);
    const running = c.state === 'running';
    field(el, 'rate').textContent = rate === null || !running ? '—' : `${rate.toFixed(1)}/s`;
    field(el, 'eta').textContent = ENDED.has(c.state)
      ? 'done'
      : running && rate !== null && rate > 0
        ? duration((total - done) / rate)
        : '—';

    const notice = field(el, 'pausedReason');
    const breach = c.breach ? ` (failed ${c.breach.failed} of ${c.breach.samples}, ${(c.breach.ratio * 100).toFixed(1)}%)` : '';
    notice.hidden = c.state !== 'paused';
    notice.textContent = c.state === 'paused' ? `paused: ${c.pausedReason || 'OPERATOR'}${breach}` : '';

    // The links between a campaign and its undo campaign, as `upshift status` prints them.
    const undo = [
      c.cancelReason ? `cancelled: ${c.cancelReason}` : '',
      c.undoCampaign ? `undone by campaign ${c.undoCampaign}` : '',
      c.undoOf ? `takes back campaign ${c.undoOf}` : '',
    ].filter(Boolean).join('; ');
    field(el, 'undo').hidden = undo === '';
    field(el, 'undo').textContent = undo;

    renderLimits(el, usage, c.state);
    renderReasons(el, c.reasons || {});
    renderSteps(el, c);
    renderDeliveries(el, deliveries, c.notifications);
    renderWindow(el, c);

    const allowed = {
      pause: c.state === 'running' || c.state === 'gated',
      resume: c.state === 'paused',
      promote: c.state === 'gated',
      cancel: !ENDED.has(c.state),
    };
    for (const button of el.querySelectorAll('[data-action]')) {
      if (button.dataset.busy !== '1') button.disabled = !allowed[button.dataset.action];
    }
    return el;
  }

  function renderLimits(el, usage, state) {
    const ul = field(el, 'limits');
    const summary = field(el, 'limitSummary');
    ul.replaceChildren();
    if (ENDED.has(state)) {
      summary.textContent = 'ended: no slots held';
      return;
    }
    if (!usage) {
      summary.textContent = '';
      return;
    }
    const full = usage.keys.filter((k) => k.atCapacity);
    const of = `${usage.keys.length}${usage.truncated ? '+' : ''}`;
    summary.textContent = usage.keys.length === 0 ? 'no limits' : `${full.length} of ${of} keys at capacity`;
    for (const k of full.slice(0, MAX_KEYS_SHOWN)) {
      const li = document.createElement('li');
      li.dataset.key = k.key;
      const key = document.createElement('code');
      key.textContent = k.key;
      li.append(key, ` ${fmt(k.inUse)}/${fmt(k.concurrency)}`);
      ul.append(li);
    }
    if (full.length > MAX_KEYS_SHOWN) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = `and ${full.length - MAX_KEYS_SHOWN} more`;
      ul.append(li);
    }
  }

  // Maintenance windows: targets waiting for their time zone's window, and when the next opens.
  function renderWindow(el, c) {
    const p = field(el, 'window');
    const waiting = c.waitingForWindow || 0;
    p.hidden = waiting === 0 || ENDED.has(c.state);
    p.textContent = p.hidden
      ? ''
      : `${fmt(waiting)} targets waiting for a maintenance window${c.nextWindowAt === undefined ? '' : `; next window opens ${new Date(c.nextWindowAt).toLocaleString()}`}`;
  }

  // A staged rollout's steps, as `upshift status` prints them; the current one marked.
  function renderSteps(el, c) {
    const ol = field(el, 'steps');
    const steps = c.steps || [];
    ol.hidden = steps.length === 0;
    ol.replaceChildren(
      ...steps.map((s, n) => {
        const li = document.createElement('li');
        li.dataset.step = String(n);
        const now = n === c.rolloutStep && !ENDED.has(c.state) ? ' ◀' : '';
        li.textContent = `${s.cohort}: ${fmt(s.targets)} targets, upgraded ${fmt(s.upgraded)}, skipped ${fmt(s.skipped)}, failed ${fmt(s.failed)} (${(s.failureRatio * 100).toFixed(1)}%)${now}`;
        return li;
      }),
    );
  }

  // The campaign's webhook deliveries (GET /campaigns/:id/notifications), newest event first.
  // The counts are the status's (every delivery, also those past the list's cap).
  function renderDeliveries(el, deliveries, counts) {
    const ul = field(el, 'deliveries');
    const list = counts ? deliveries || [] : [];
    field(el, 'webhookSummary').textContent = counts ? `${counts.delivered} delivered, ${counts.pending} pending, ${counts.failed} failed` : 'none';
    ul.replaceChildren(
      ...list.slice(-MAX_DELIVERIES_SHOWN).reverse().map((d) => {
        const li = document.createElement('li');
        li.dataset.event = d.eventId;
        li.dataset.notifier = d.notifier;
        li.dataset.status = d.status;
        const tries = `${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`;
        li.textContent = `${d.event} → ${d.notifier}: ${d.status}, ${tries}${d.lastError ? ` (last error: ${d.lastError})` : ''}`;
        return li;
      }),
    );
  }

  function renderReasons(el, reasons) {
    const body = field(el, 'reasons');
    const rows = Object.entries(reasons).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    body.replaceChildren(
      ...rows.map(([code, n]) => {
        const tr = document.createElement('tr');
        tr.dataset.reason = code;
        const name = document.createElement('td');
        name.textContent = code;
        const count = document.createElement('td');
        count.className = 'num';
        count.textContent = fmt(n);
        tr.append(name, count);
        return tr;
      }),
    );
    field(el, 'noReasons').hidden = rows.length > 0;
  }

  // --- actions -------------------------------------------------------------------------------

  async function act(id, action, button) {
    if (action === 'cancel' && !window.confirm(`Cancel campaign ${id}? Targets not started are recorded skipped.`)) return;
    button.dataset.busy = '1';
    button.disabled = true;
    try {
      const res = await api('POST', `/campaigns/${encodeURIComponent(id)}/${action}`);
      say(`${id}: ${res.state}`);
    } catch (err) {
      if (err instanceof Unauthorized) showLogin('The token was refused; enter it again.');
      else say(`${id}: ${action} failed: ${err.message}`, true);
    } finally {
      delete button.dataset.busy;
      refreshNow();
    }
  }

  function say(text, isError) {
    const m = $('message');
    m.textContent = text;
    m.classList.toggle('error', Boolean(isError));
  }

  // --- refresh loop --------------------------------------------------------------------------

  async function refresh() {
    const startedMs = Date.now();
    const { campaigns } = await api('GET', '/campaigns');
    const usagesAsked = Promise.all(
      campaigns.map((c) =>
        ENDED.has(c.state) ? null : api('GET', `/campaigns/${encodeURIComponent(c.id)}/limits`).catch(() => null),
      ),
    );
    // Deliveries are read only for a campaign that has some (the status counts them) and whose
    // count of changes moved since the card's last read, a few at a time: a list of campaigns,
    // most without `notify` or long settled, costs no read a second.
    const deliveriesAsked = atMost(
      DELIVERY_READS_AT_ONCE,
      campaigns.map((c) => () => {
        const entry = cards.get(c.id);
        const known = entry ? entry.deliveries : null;
        const changes = c.notifications ? c.notifications.changes : -1;
        if (!c.notifications || (known && entry.deliveriesChanges === changes)) return { deliveries: known, changes: entry ? entry.deliveriesChanges : -1 };
        return api('GET', `/campaigns/${encodeURIComponent(c.id)}/notifications`).then(
          (r) => ({ deliveries: r.deliveries, changes }),
          // Read again next time.
          () => ({ deliveries: known, changes: -1 }),
        );
      }),
    );
    const [usages, deliveries] = await Promise.all([usagesAsked, deliveriesAsked]);
    const nowMs = Date.now();
    const seen = new Set();
    campaigns.forEach((c, i) => {
      seen.add(c.id);
      list.append(render(c, usages[i], deliveries[i].deliveries, nowMs)); // append moves: keeps the API's newest-first order
      const entry = cards.get(c.id);
      entry.deliveries = deliveries[i].deliveries;
      entry.deliveriesChanges = deliveries[i].changes;
    });
    for (const [id, entry] of cards) {
      if (!seen.has(id)) {
        entry.el.remove();
        cards.delete(id);
      }
    }
    $('empty').hidden = campaigns.length > 0;
    $('refreshed').textContent = `updated ${new Date(nowMs).toLocaleTimeString()}`;
    // When the figures shown were asked for and drawn (tests compare them with the status hash).
    document.body.dataset.refreshStartedAt = String(startedMs);
    document.body.dataset.refreshedAt = String(nowMs);
  }

  /** Runs `tasks` (functions returning a value or a promise), at most `limit` at once; their results in order. */
  async function atMost(limit, tasks) {
    const out = new Array(tasks.length);
    let next = 0;
    const lane = async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]();
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
    return out;
  }

  /** One refresh chain at a time: a refresh asked for while one runs happens right after it. */
  async function loop() {
    if (inFlight) {
      again = true;
      return;
    }
    clearTimeout(timer);
    if (signedOut) return;
    inFlight = true;
    try {
      await refresh();
      $('logout').hidden = false;
      if ($('message').classList.contains('stale')) {
        $('message').classList.remove('stale');
        say('');
      }
    } catch (err) {
      if (err instanceof Unauthorized) {
        clearToken();
        showLogin(tokenEntered ? 'The token was refused.' : '');
      } else {
        say(`refresh failed: ${err.message}; retrying`, true);
        $('message').classList.add('stale');
      }
    } finally {
      inFlight = false;
    }
    if (signedOut) return;
    if (again) {
      again = false;
      loop();
      return;
    }
    timer = setTimeout(loop, REFRESH_INTERVAL_MS);
  }

  function refreshNow() {
    loop();
  }

  refreshNow();
})();
