// reasons.test.mjs — every way a call ends says what really happened, on both sides, with the
// same facts: declined, no answer, offline, busy, no media path. Each end state carries a
// machine-readable data-reason on [data-testid="call-reason"] (the words may change, the facts
// may not). A side whose window closes at once (the one who declined, the one a call was missed
// by) is read through window.switchboard.lastCall and the chat's history.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairsFixture, openChat, waitForStatus, reasonOf, screenshot } from './harness.mjs';

const PAIRS = {
  declined: ['alice', 'bob'],
  noAnswer: ['carol', 'dave'],
  offline: ['erin', 'frank'],
  busy: ['gina', 'hank'],
  busyOther: ['ivan', 'hank'],
  noPath: ['judy', 'ken'],
};

const fixture = pairsFixture(PAIRS);
const { chatOf } = fixture;

const { open } = fixture;

const dataReason = (page) => page.getByTestId('call-reason').getAttribute('data-reason');

/** The last call that ended on `page`, once it has: {status, reason, reasonCode}. */
async function lastCall(page) {
  await page.waitForFunction(() => window.switchboard.lastCall, null, { timeout: 10000 });
  return page.evaluate(() => window.switchboard.lastCall);
}

/** The newest call event in the open chat, once there is one with `outcome`. */
async function callEvent(page, outcome, timeout = 10000) {
  const row = page.locator(`[data-testid="call-event"][data-outcome="${outcome}"]`).last();
  await row.waitFor({ timeout });
  return (await row.textContent()).trim();
}

const close = async (...pages) => {
  for (const page of pages) await page.context().close();
};

test('declined: "Bob declined the call." for the caller, "You declined the call." for the callee', async () => {
  const alice = await open('declined', 0);
  const bob = await open('declined', 1);
  await alice.getByTestId('start-call').click();
  await bob.getByTestId('decline-call').click({ timeout: 15000 });
  await waitForStatus(alice, 'ended');
  assert.equal(await reasonOf(alice), 'Bob declined the call.');
  assert.equal(await dataReason(alice), 'declined');
  const bobs = await lastCall(bob);
  assert.equal(bobs.reason, 'You declined the call.');
  assert.equal(bobs.reasonCode, 'declined');
  await close(alice, bob);
});

test('no answer: "Dave did not answer." for the caller, "Missed call from Carol." for the callee', async () => {
  const carol = await open('noAnswer', 0, { query: '?ringTimeoutMs=2500' });
  const dave = await open('noAnswer', 1);
  await carol.getByTestId('start-call').click();
  await dave.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await waitForStatus(carol, 'failed', 10000);
  assert.equal(await reasonOf(carol), 'Dave did not answer.');
  assert.equal(await dataReason(carol), 'no-answer');
  await dave.locator('#call-modal').waitFor({ state: 'hidden', timeout: 10000 });
  const daves = await lastCall(dave);
  assert.equal(daves.reason, 'Missed call from Carol.');
  assert.equal(daves.reasonCode, 'no-answer');
  await close(carol, dave);
});

test('offline: the caller is told before dialling and at once; the callee later sees a missed call', async () => {
  const erin = await open('offline', 0, { query: '?unreachableGraceMs=1500' });
  // The chat header says so before anyone presses Call.
  await erin.locator('#chat-sub', { hasText: 'Offline' }).waitFor({ timeout: 5000 });
  await erin.locator('.chat-head [data-testid="presence"][data-online="false"]').waitFor({ timeout: 5000 });
  await erin.getByTestId('start-call').click();
  // At once, while the call is still being placed.
  await erin.locator('[data-testid="call-reason"][data-reason="offline"]').waitFor({ timeout: 2000 });
  assert.equal(await reasonOf(erin), 'Frank is offline — they will see a missed call.');
  await waitForStatus(erin, 'failed', 10000);
  assert.equal(await dataReason(erin), 'offline');
  await screenshot(erin, 'reason-offline-caller');

  // Frank signs in later: the missed call is in the chat's history, worded for him.
  const frank = await open('offline', 1);
  const text = await callEvent(frank, 'missed');
  assert.match(text, /Missed video call/);
  await close(erin, frank);
});

test('busy: "Hank is in another call." for the caller; Hank gets a history entry', async () => {
  // Hank is in a call with Ivan.
  const ivan = await open('busyOther', 0);
  const hank = await open('busyOther', 1);
  await ivan.getByTestId('start-call').click();
  await hank.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(ivan, 'connected');
  await waitForStatus(hank, 'connected');

  const gina = await open('busy', 0);
  await gina.getByTestId('start-call').click();
  await waitForStatus(gina, 'ended', 10000);
  assert.equal(await reasonOf(gina), 'Hank is in another call.');
  assert.equal(await dataReason(gina), 'busy');
  // Hank's call with Ivan goes on, untouched.
  assert.equal(await hank.getByTestId('call-status').textContent(), 'connected');
  // Hank's side: the call Gina tried is in their chat's history, for both.
  assert.match(await callEvent(gina, 'busy'), /Busy/);
  await ivan.getByTestId('hangup').click();
  await waitForStatus(hank, 'ended');
  await hank.getByTestId('call-close').click();
  await openChat(hank, chatOf.busy);
  assert.match(await callEvent(hank, 'busy'), /Missed video call/);
  await close(ivan, hank, gina);
});

test('no media path: both sides say the call could not connect (never "ended the call")', async () => {
  // Ken's browser gathers no candidate of its own and takes none from Judy: no path exists.
  const noCandidates = () => {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Native {
      constructor(config = {}, ...rest) {
        super({ ...config, iceTransportPolicy: 'relay' }, ...rest); // no relay exists: nothing local
      }
    };
    Native.prototype.addIceCandidate = () => Promise.resolve();
  };
  const query = '?iceGiveUpMs=3000';
  const judy = await open('noPath', 0, { query });
  const ken = await open('noPath', 1, { query, initScripts: [noCandidates] });
  await judy.getByTestId('start-call').click();
  await ken.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(judy, 'failed', 15000);
  await waitForStatus(ken, 'failed', 15000);
  for (const [page, peer] of [
    [judy, 'Ken'],
    [ken, 'Judy'],
  ]) {
    const reason = await reasonOf(page);
    assert.match(reason, /^Could not connect the call/);
    assert.ok(reason.includes(peer), reason);
    assert.doesNotMatch(reason, /ended the call/);
    assert.equal(await dataReason(page), 'connection-failed');
    const log = await page.evaluate(() => window.switchboard.call.statusLog.map((s) => s.status));
    assert.ok(!log.includes('ended'), `never "ended": ${log}`);
  }
  await screenshot(judy, 'reason-no-path-caller');
  await close(judy, ken);
});
