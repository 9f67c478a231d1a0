// ringing.test.mjs — a call is noticed: the caller hears a ringback while the callee's device
// rings, the callee hears a ringtone (measured at the WebAudio analyser the tone passes through,
// so "sound plays" is a number, not a flag), the callee's title flashes and, with its tab hidden,
// a desktop notification is shown. Everything stops at once when the call is answered, cancelled
// or declined.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairsFixture, openAs, openChat, transportOf, waitForStatus } from './harness.mjs';

const PAIRS = {
  accept: ['alice', 'bob'],
  cancel: ['carol', 'dave'],
  decline: ['erin', 'frank'],
};

const fixture = pairsFixture(PAIRS);
const { chatOf } = fixture;

/**
 * Lets the test hide the page (`__setHidden(true)`), as when the person is in another tab: the
 * headless page is always "visible", so `document.hidden` and `visibilityState` are overridden.
 */
function controllableVisibility() {
  let hidden = false;
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, 'visibilityState', {
    configurable: true,
    get: () => (hidden ? 'hidden' : 'visible'),
  });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
}

/** Records every notification the page shows, and whether it was closed. */
function recordNotifications() {
  const Original = window.Notification;
  window.__notifications = [];
  window.Notification = class extends Original {
    constructor(title, options) {
      super(title, options);
      this.__record = { title, closed: false };
      window.__notifications.push(this.__record);
    }
    close() {
      this.__record.closed = true;
      super.close();
    }
  };
}

async function openPair(key) {
  const [a, b] = PAIRS[key];
  const pageA = await openAs(fixture.browser, fixture.server, a);
  const pageB = await openAs(fixture.browser, fixture.server, b, {
    initScripts: [controllableVisibility, recordNotifications],
    setup: (context) => context.grantPermissions(['notifications'], { origin: fixture.server.url }),
  });
  await openChat(pageA, chatOf[key]);
  await openChat(pageB, chatOf[key]);
  await transportOf(pageA);
  await transportOf(pageB);
  return [pageA, pageB];
}

const ringerOf = (page) => page.evaluate(() => ({ ...window.switchboard.ringer, title: document.title }));

/** Waits until the page's ringer plays `tone` and its sound reaches the analyser. */
async function expectHeard(page, tone) {
  await page.waitForFunction(
    (wanted) => window.switchboard.ringer.tone === wanted && window.switchboard.ringer.level() > 0.01,
    tone,
    { timeout: 8000, polling: 20 },
  );
}

/** Waits (briefly: "at once") until every cue is off, then proves the speaker stays silent. */
async function expectSilentAtOnce(page, within = 1000) {
  await page.waitForFunction(
    () => {
      const r = window.switchboard.ringer;
      return r.tone === null && !r.titleFlashing && !r.vibrating && !r.notifying && r.level() === 0;
    },
    null,
    { timeout: within, polling: 20 },
  );
  // A whole ringtone cycle later nothing has started again (a sampling window, not a wait).
  const loudest = await page.evaluate(
    () =>
      new Promise((resolve) => {
        let max = 0;
        const timer = setInterval(() => (max = Math.max(max, window.switchboard.ringer.level())), 25);
        setTimeout(() => {
          clearInterval(timer);
          resolve(max);
        }, 3100);
      }),
  );
  assert.equal(loudest, 0, 'no sound after the ringing stopped');
  const state = await ringerOf(page);
  assert.ok(!state.title.includes('📞'), `title restored (is "${state.title}")`);
}

async function expectRingingEverywhere(pageA, pageB, callerName) {
  await pageB.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await waitForStatus(pageA, 'ringing');
  await expectHeard(pageA, 'ringback');
  await expectHeard(pageB, 'ringtone');
  // The title alternates between the call and the app's own title.
  await pageB.waitForFunction((name) => document.title === `📞 ${name} is calling…`, callerName, { timeout: 3000 });
  await pageB.waitForFunction(() => document.title === 'Switchboard', null, { timeout: 3000 });
  const b = await ringerOf(pageB);
  assert.equal(b.titleFlashing, true);
  assert.equal(b.audioState, 'running', 'the sign-in click unlocked audio');
  // The caller hears only the ringback: no flashing title for one's own call.
  const a = await ringerOf(pageA);
  assert.equal(a.titleFlashing, false);
  assert.equal(a.notifying, false);
}

async function closePages(...pages) {
  for (const page of pages) await page.context().close();
}

test('ringback for the caller, ringtone + flashing title + notification (tab hidden) for the callee; all stop at once on Accept', async () => {
  const [pageA, pageB] = await openPair('accept');
  // Permission granted: no need to offer the "Get notified of calls" button.
  assert.equal(await pageB.getByTestId('notify-calls').isHidden(), true);

  await pageB.evaluate(() => window.__setHidden(true));
  await pageA.getByTestId('start-call').click();
  await expectRingingEverywhere(pageA, pageB, 'Alice');
  const shown = await pageB.evaluate(() => window.__notifications);
  assert.equal(shown.length, 1, 'one notification');
  assert.equal(shown[0].title, 'Alice is calling…');
  assert.equal(shown[0].closed, false);
  assert.equal((await ringerOf(pageB)).notifying, true);

  await pageB.getByTestId('accept-call').click();
  await expectSilentAtOnce(pageB);
  await expectSilentAtOnce(pageA, 3000); // A learns of the answer through the server
  assert.equal((await pageB.evaluate(() => window.__notifications))[0].closed, true, 'notification closed');
  await waitForStatus(pageA, 'connected');
  await pageA.getByTestId('hangup').click();
  await closePages(pageA, pageB);
});

test('the caller cancels: the callee stops ringing at once (sound, title, notification)', async () => {
  const [pageA, pageB] = await openPair('cancel');
  await pageB.evaluate(() => window.__setHidden(true));
  await pageA.getByTestId('start-call').click();
  await expectRingingEverywhere(pageA, pageB, 'Carol');
  await pageB.waitForFunction(() => window.__notifications.length === 1, null, { timeout: 2000 });

  await pageA.getByTestId('hangup').click();
  await expectSilentAtOnce(pageA);
  await expectSilentAtOnce(pageB, 3000);
  assert.equal((await pageB.evaluate(() => window.__notifications))[0].closed, true, 'notification closed');
  await closePages(pageA, pageB);
});

test('the callee declines: both sides fall silent at once', async () => {
  const [pageA, pageB] = await openPair('decline');
  await pageA.getByTestId('start-call').click();
  await expectRingingEverywhere(pageA, pageB, 'Erin');
  // A visible tab needs no notification: the call window is in front of the person.
  assert.equal((await pageB.evaluate(() => window.__notifications)).length, 0);

  await pageB.getByTestId('decline-call').click();
  await expectSilentAtOnce(pageB);
  await waitForStatus(pageA, 'ended');
  await expectSilentAtOnce(pageA, 1000);
  await closePages(pageA, pageB);
});

test('notification permission is asked only when the person clicks "Get notified of calls"', async () => {
  // Headless Chromium answers "denied" without asking; this stands in for a browser that asks.
  const undecidedPermission = () => {
    let permission = 'default';
    window.__permissionRequests = 0;
    Object.defineProperty(Notification, 'permission', { configurable: true, get: () => permission });
    Notification.requestPermission = async () => {
      window.__permissionRequests += 1;
      permission = 'granted';
      return permission;
    };
  };
  const [a] = PAIRS.accept;
  const page = await openAs(fixture.browser, fixture.server, a, { initScripts: [undecidedPermission] });
  const button = page.getByTestId('notify-calls');
  await button.waitFor({ state: 'visible', timeout: 5000 });
  assert.equal(await page.evaluate(() => window.__permissionRequests), 0, 'not asked on sign-in');
  await button.click();
  await button.waitFor({ state: 'hidden', timeout: 5000 });
  assert.equal(await page.evaluate(() => window.__permissionRequests), 1);
  await closePages(page);
});
