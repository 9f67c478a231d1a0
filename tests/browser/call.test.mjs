// call.test.mjs — video calls between two real browser sessions (two isolated Chromium contexts,
// fake camera), against a real server: connecting over WebSocket and over the relay fallbacks,
// hanging up, declining, no answer, nobody online, camera denied, and both calling at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  pairsFixture,
  openAs,
  openChat,
  transportOf,
  waitForStatus,
  reasonOf,
  expectRemoteVideoPlaying,
  screenshot,
  consoleHas,
} from './harness.mjs';

// One pair of users (and their chat) per test, so no test sees another's leftover signals.
const PAIRS = {
  websocket: ['alice', 'bob'],
  sse: ['carol', 'dave'],
  longpoll: ['erin', 'frank'],
  decline: ['gina', 'hank'],
  noAnswer: ['ivan', 'judy'],
  offline: ['ken', 'lena'],
  denied: ['mike', 'nora'],
  glare: ['oscar', 'pat'],
};

const fixture = pairsFixture(PAIRS);
const { chatOf } = fixture;

/** Signs both users of a pair in, each in its own context, with their chat open. */
async function openPair(key, options = {}) {
  const [a, b] = PAIRS[key];
  const pageA = await openAs(fixture.browser, fixture.server, a, options.a || options);
  const pageB = await openAs(fixture.browser, fixture.server, b, options.b || options);
  await openChat(pageA, chatOf[key]);
  await openChat(pageB, chatOf[key]);
  return [pageA, pageB];
}

async function closePages(...pages) {
  for (const page of pages) await page.context().close();
}

/** A calls B, B accepts, both connect, B sees A's video; returns after screenshots. */
async function connectCall(pageA, pageB, label) {
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('accept-call').waitFor({ timeout: 15000 });
  assert.equal(await pageB.getByTestId('call-status').textContent(), 'ringing');
  await waitForStatus(pageA, 'ringing');
  await pageB.getByTestId('accept-call').click();
  await waitForStatus(pageA, 'connected');
  await waitForStatus(pageB, 'connected');
  await expectRemoteVideoPlaying(pageB);
  await expectRemoteVideoPlaying(pageA);
  await screenshot(pageA, `call-${label}-caller`);
  await screenshot(pageB, `call-${label}-callee`);
}

async function hangUpAndExpectEnded(pageA, pageB) {
  await pageA.getByTestId('hangup').click();
  await waitForStatus(pageA, 'ended');
  await waitForStatus(pageB, 'ended');
  assert.match(await reasonOf(pageB), /ended the call/);
  // The media really stopped: no connection is left open.
  const state = await pageB.evaluate(() => window.switchboard.pc && window.switchboard.pc.connectionState);
  assert.equal(state, 'closed');
}

test('A calls B over WebSocket, B accepts, video plays both ways, hang up ends it on both sides', async () => {
  const [pageA, pageB] = await openPair('websocket');
  assert.equal(await transportOf(pageA), 'websocket');
  assert.equal(await transportOf(pageB), 'websocket');

  await connectCall(pageA, pageB, 'websocket');

  // The guide's console words, on the sending and the receiving side.
  assert.ok(consoleHas(pageA, '[CallJS] Transport: websocket'));
  assert.ok(consoleHas(pageA, '[CallJS] Sending webrtc.offer...'));
  assert.ok(consoleHas(pageA, '✓ Sent webrtc.offer via WebSocket'));
  assert.ok(consoleHas(pageA, 'Signal sent via server: webrtc.offer'));
  assert.ok(consoleHas(pageB, '[Polling] Processing signal: webrtc.offer'));
  // Status went calling → ringing → connecting → connected, in that order.
  const statuses = await pageA.evaluate(() => window.switchboard.call.statusLog.map((s) => s.status));
  assert.deepEqual(statuses, ['calling', 'ringing', 'connecting', 'connected']);
  // On one machine the media goes directly, and the call window says so.
  for (const page of [pageA, pageB]) {
    await page.locator('[data-testid="call-path"][data-path="direct"]').waitFor({ timeout: 5000 });
    assert.equal(await page.getByTestId('call-path').textContent(), 'Direct');
  }

  await hangUpAndExpectEnded(pageA, pageB);
  await closePages(pageA, pageB);
});

test('with WebSockets blocked the call connects through the relay (Server-Sent Events)', async () => {
  const [pageA, pageB] = await openPair('sse', { blockWebSocket: true });
  assert.equal(await transportOf(pageA), 'sse');
  assert.equal(await transportOf(pageB), 'sse');

  await connectCall(pageA, pageB, 'sse');
  assert.equal(await pageA.evaluate(() => window.switchboard.transport), 'sse');
  assert.ok(consoleHas(pageA, 'Signal sent via server: webrtc.offer'));
  assert.ok(!consoleHas(pageA, '✓ Sent webrtc.offer via WebSocket'));
  assert.ok(consoleHas(pageB, '[Polling] Processing signal: webrtc.offer'));

  await hangUpAndExpectEnded(pageA, pageB);
  await closePages(pageA, pageB);
});

test('with WebSockets and SSE blocked the call connects over long-poll', async () => {
  // B is on a phone-sized screen, for the screenshot of a call at phone width.
  const blocked = { blockWebSocket: true, blockEventSource: true };
  const [pageA, pageB] = await openPair('longpoll', { a: blocked, b: { ...blocked, viewport: { width: 375, height: 740 } } });
  assert.equal(await transportOf(pageA), 'longpoll');
  assert.equal(await transportOf(pageB), 'longpoll');

  // No push transport, so no receipts: "ringing" comes from the callee's call.ringing signal.
  await connectCall(pageA, pageB, 'longpoll');
  assert.ok(consoleHas(pageB, '[Polling] Response: true Signals: '));
  assert.ok(consoleHas(pageB, '[Polling] Processing signal: webrtc.offer'));

  await hangUpAndExpectEnded(pageA, pageB);
  await closePages(pageA, pageB);
});

test('B declines: A sees the call ended, with "declined" as the reason', async () => {
  const [pageA, pageB] = await openPair('decline');
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('decline-call').waitFor({ timeout: 15000 });
  await screenshot(pageB, 'call-incoming');
  await pageB.getByTestId('decline-call').click();
  await waitForStatus(pageA, 'ended');
  assert.match(await reasonOf(pageA), /Hank declined/);
  assert.match(await reasonOf(pageA), /declined/);
  // B's call window closes once declined.
  await pageB.locator('#call-modal').waitFor({ state: 'hidden', timeout: 5000 });
  await closePages(pageA, pageB);
});

test('B never answers: A gives up after the ring timeout and says so; B stops ringing', async () => {
  const [pageA, pageB] = await openPair('noAnswer', { a: { query: '?ringTimeoutMs=3000' }, b: {} });
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await waitForStatus(pageA, 'ringing');
  await waitForStatus(pageA, 'failed', 10000);
  assert.match(await reasonOf(pageA), /did not answer/);
  await screenshot(pageA, 'call-no-answer-caller');
  // The caller's call.cancel reaches B: the incoming call disappears.
  await pageB.locator('#call-modal').waitFor({ state: 'hidden', timeout: 10000 });
  await closePages(pageA, pageB);
});

test('nobody online: the caller is told the other person is offline', async () => {
  const [a] = PAIRS.offline;
  const pageA = await openAs(fixture.browser, fixture.server, a, { query: '?unreachableGraceMs=1500' });
  await openChat(pageA, chatOf.offline);
  await transportOf(pageA);
  await pageA.getByTestId('start-call').click();
  await waitForStatus(pageA, 'failed', 10000);
  assert.match(await reasonOf(pageA), /offline/);
  await closePages(pageA);
});

test('camera denied: a clear message, and nothing rings on the other side', async () => {
  const denyCamera = () => {
    navigator.mediaDevices.getUserMedia = () =>
      Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  };
  const [pageA, pageB] = await openPair('denied', { a: { initScripts: [denyCamera] }, b: {} });
  await pageA.getByTestId('start-call').click();
  await waitForStatus(pageA, 'failed');
  assert.match(await reasonOf(pageA), /Camera and microphone access was denied/);
  await screenshot(pageA, 'call-camera-denied');
  assert.equal(await pageB.locator('#call-modal').isHidden(), true);
  await closePages(pageA, pageB);
});

test('both call at once (glare): one call, connected on both sides', async () => {
  const [pageA, pageB] = await openPair('glare');
  await transportOf(pageA);
  await transportOf(pageB);
  // Click in both pages in the same instant, before either invite can arrive.
  const click = () => document.querySelector('[data-testid="start-call"]').click();
  await Promise.all([pageA.evaluate(click), pageB.evaluate(click)]);
  await waitForStatus(pageA, 'connected');
  await waitForStatus(pageB, 'connected');
  const idA = await pageA.evaluate(() => window.switchboard.call.id);
  const idB = await pageB.evaluate(() => window.switchboard.call.id);
  assert.equal(idA, idB, 'both sides are in the same call');
  assert.ok(
    consoleHas(pageA, '[CallJS] Both called at once') || consoleHas(pageB, '[CallJS] Both called at once'),
    'the invites crossed',
  );
  await expectRemoteVideoPlaying(pageA);
  await expectRemoteVideoPlaying(pageB);
  await hangUpAndExpectEnded(pageA, pageB);
  await closePages(pageA, pageB);
});
