// tabs.test.mjs — a person with several tabs open (several devices): a call is answered once.
// When the callee answers in one tab, the others stop ringing within a second and say so; a late
// Accept in another tab can neither end nor take over the live call; the caller's other tab never
// rings, and cannot place a second call while the first is on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  pairsFixture,
  openTab,
  openChat,
  transportOf,
  waitForStatus,
  reasonOf,
  expectRemoteVideoPlaying,
  screenshot,
} from './harness.mjs';

const PAIRS = {
  twoCallees: ['alice', 'bob'],
  lateAccept: ['carol', 'dave'],
  declined: ['erin', 'frank'],
  twoCallers: ['gina', 'hank'],
};

const fixture = pairsFixture(PAIRS);
const { chatOf } = fixture;

const { open } = fixture;

async function secondTab(page, options) {
  const tab = await openTab(page, options);
  await transportOf(tab);
  return tab;
}

/** Clicks `testId` inside the page and returns the page's clock at the click. */
const clickAt = (page, testId) =>
  page.evaluate((id) => {
    const at = Date.now();
    document.querySelector(`[data-testid="${id}"]`).click();
    return at;
  }, testId);

const statusAt = (page, status) =>
  page.evaluate((s) => {
    const log = (window.switchboard.call || window.switchboard.lastCall).statusLog;
    return (log.find((entry) => entry.status === s) || {}).at;
  }, status);

const statusLog = (page) => page.evaluate(() => window.switchboard.call.statusLog.map((s) => s.status));

test('two tabs ring; answering in one stops the other within 1 s ("Answered on another device")', async () => {
  const alice = await open('twoCallees', 0);
  const bob1 = await open('twoCallees', 1);
  const bob2 = await secondTab(bob1);
  const devices = await Promise.all([bob1, bob2].map((p) => p.evaluate(() => window.switchboard.device)));
  assert.notEqual(devices[0], devices[1], 'each tab is a device of its own');

  await alice.getByTestId('start-call').click();
  await bob1.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await bob2.getByTestId('accept-call').waitFor({ timeout: 15000 });
  const clicked = await clickAt(bob1, 'accept-call');
  await waitForStatus(bob2, 'answered-elsewhere', 3000);
  const stopped = await statusAt(bob2, 'answered-elsewhere');
  assert.ok(stopped - clicked < 1000, `the other tab stopped ringing ${stopped - clicked} ms after the answer`);
  assert.equal(await reasonOf(bob2), 'Answered on another device.');
  assert.equal(await bob2.getByTestId('call-reason').getAttribute('data-reason'), 'answered-elsewhere');
  assert.equal(await bob2.getByTestId('accept-call').isVisible(), false);
  await screenshot(bob2, 'tabs-answered-elsewhere');

  await waitForStatus(alice, 'connected');
  await waitForStatus(bob1, 'connected');
  await expectRemoteVideoPlaying(alice);
  // The other tab's window closes by itself a few seconds later.
  await bob2.locator('#call-modal').waitFor({ state: 'hidden', timeout: 8000 });
  await alice.getByTestId('hangup').click();
  await waitForStatus(bob1, 'ended');
  await alice.context().close();
  await bob1.context().close();
});

test('a late Accept in another tab cannot end or take over the live call (30 s later both real tabs are connected)', async () => {
  const carol = await open('lateAccept', 0);
  const dave1 = await open('lateAccept', 1);
  // Dave's second tab never hears that the call was answered (its WebSocket drops that one
  // push), so it keeps ringing and its Accept comes late, as on a slow device.
  const deaf = (tab) =>
    tab.routeWebSocket(/\/ws\//, (ws) => {
      const upstream = ws.connectToServer();
      ws.onMessage((message) => upstream.send(message));
      upstream.onMessage((message) => {
        if (!String(message).includes('call.answered_elsewhere')) ws.send(message);
      });
    });
  const dave2 = await secondTab(dave1, { query: '?transports=websocket', setup: deaf });

  await carol.getByTestId('start-call').click();
  await dave1.getByTestId('accept-call').click({ timeout: 15000 });
  await dave2.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await waitForStatus(carol, 'connected');
  await waitForStatus(dave1, 'connected');
  assert.equal(await dave2.getByTestId('call-status').textContent(), 'ringing', 'the deaf tab still rings');

  await dave2.getByTestId('accept-call').click();
  // The server refuses it (409 answered_elsewhere): the tab steps aside and sends nothing.
  await waitForStatus(dave2, 'answered-elsewhere', 10000);

  // Long enough for anything the late tab might do (its give-up timer is 20 s) to have happened.
  await new Promise((resolve) => setTimeout(resolve, 30000));
  for (const page of [carol, dave1]) {
    assert.equal(await page.getByTestId('call-status').textContent(), 'connected');
    const log = await statusLog(page);
    assert.ok(!log.includes('ended') && !log.includes('failed'), `${log}`);
  }
  await expectRemoteVideoPlaying(carol);
  await expectRemoteVideoPlaying(dave1);
  await carol.getByTestId('hangup').click();
  await waitForStatus(dave1, 'ended');
  await carol.context().close();
  await dave1.context().close();
});

test('declining in one tab stops the other ("Declined on another device") and tells the caller', async () => {
  const erin = await open('declined', 0);
  const frank1 = await open('declined', 1);
  const frank2 = await secondTab(frank1);
  await erin.getByTestId('start-call').click();
  await frank2.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await frank1.getByTestId('decline-call').click({ timeout: 15000 });
  await waitForStatus(frank2, 'answered-elsewhere', 3000);
  assert.equal(await reasonOf(frank2), 'Declined on another device.');
  await waitForStatus(erin, 'ended');
  assert.equal(await reasonOf(erin), 'Frank declined the call.');
  await erin.context().close();
  await frank1.context().close();
});

test("a caller with two tabs: the other tab never rings or reacts, and cannot place a second call", async () => {
  const gina1 = await open('twoCallers', 0);
  const gina2 = await secondTab(gina1);
  await openChat(gina2, chatOf.twoCallers);
  const hank = await open('twoCallers', 1);

  await gina1.getByTestId('start-call').click();
  await hank.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(gina1, 'connected');
  await waitForStatus(hank, 'connected');
  assert.equal(await gina2.locator('#call-modal').isHidden(), true, 'the caller’s other tab stays quiet');
  assert.equal(await gina2.evaluate(() => window.switchboard.call), null);

  // A second call from the other tab is refused: Gina is already in a call (409 already_in_call).
  await gina2.getByTestId('start-call').click();
  await waitForStatus(gina2, 'failed', 10000);
  assert.equal(await gina2.getByTestId('call-reason').getAttribute('data-reason'), 'already-in-call');
  assert.equal(await hank.getByTestId('call-status').textContent(), 'connected');
  assert.equal(await gina1.getByTestId('call-status').textContent(), 'connected');
  await hank.getByTestId('hangup').click();
  await waitForStatus(gina1, 'ended');
  await gina1.context().close();
  await hank.context().close();
});
