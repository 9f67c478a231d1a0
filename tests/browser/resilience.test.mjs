// resilience.test.mjs — the delivery promises of the client, provoked on purpose in a real
// browser: a signal pushed twice is processed once, a failed send is retried with the same
// signal_id, ICE candidates that overtake the offer are queued, a blocked WebSocket is climbed
// back to once it works again, an ICE restart (by both sides at once) keeps the call up, and a
// media path that breaks shows "reconnecting", gets an ICE restart and comes back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import {
  pairsFixture,
  transportOf,
  waitForStatus,
  expectRemoteVideoPlaying,
} from './harness.mjs';

const PAIRS = {
  duplicate: ['alice', 'bob'],
  retry: ['carol', 'dave'],
  earlyIce: ['erin', 'frank'],
  climb: ['gina', 'hank'],
  restart: ['ivan', 'judy'],
  broken: ['ken', 'lena'],
};

// Inside run.sh's network namespace only loopback exists, and starving its UDP harms nothing
// else; outside it the test that does so is skipped.
const isolated = Object.values(os.networkInterfaces()).every((addresses) => addresses.every((a) => a.internal));

const fixture = pairsFixture(PAIRS);

const { open } = fixture;

async function callAndConnect(pageA, pageB) {
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(pageA, 'connected');
  await waitForStatus(pageB, 'connected');
}

const count = (page, line) => page.consoleLines.filter((text) => text === line).length;

test('a signal pushed twice is processed exactly once', async () => {
  const pageA = await open('duplicate', 0);
  // Bob's WebSocket goes through a proxy that repeats every signal frame, as a resumed
  // connection may. The client must drop the repeats by seq.
  const repeatSignals = (context) =>
    context.routeWebSocket(/\/ws\//, (ws) => {
      const upstream = ws.connectToServer();
      ws.onMessage((message) => upstream.send(message));
      upstream.onMessage((message) => {
        ws.send(message);
        if (String(message).includes('"op":"signal"')) ws.send(message);
      });
    });
  const bob = await open('duplicate', 1, { setup: repeatSignals });
  assert.equal(await transportOf(bob), 'websocket');

  await callAndConnect(pageA, bob);
  await expectRemoteVideoPlaying(bob);
  assert.equal(count(bob, '[Polling] Processing signal: call.invite'), 1);
  assert.equal(count(bob, '[Polling] Processing signal: webrtc.offer'), 1);
  await pageA.getByTestId('hangup').click();
  await waitForStatus(bob, 'ended');
  await pageA.context().close();
  await bob.context().close();
});

test('a failed send is retried with backoff, reusing its signal_id, and the call still rings', async () => {
  // Without a WebSocket the relay is the only path, so its failure must be retried.
  const pageA = await open('retry', 0, { blockWebSocket: true });
  const pageB = await open('retry', 1);
  const invites = [];
  await pageA.route(/\/api\/p2p\/send-signal\//, async (route) => {
    const body = route.request().postDataJSON();
    if (body.type !== 'call.invite') return route.continue();
    invites.push(body.signal_id);
    if (invites.length === 1) {
      return route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ success: false, error: 'unavailable (injected by the test)' }),
      });
    }
    return route.continue();
  });
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await waitForStatus(pageA, 'ringing');
  assert.equal(invites.length, 2, 'sent, refused, sent again');
  assert.equal(invites[0], invites[1], 'the retry reuses the signal_id');
  assert.ok(pageA.consoleLines.some((line) => line.includes('retry 1 in') && line.includes('same signal_id')));
  await pageA.getByTestId('hangup').click();
  await pageB.locator('#call-modal').waitFor({ state: 'hidden', timeout: 10000 });
  await pageA.context().close();
  await pageB.context().close();
});

test('ICE candidates that arrive before the offer are queued, not dropped', async () => {
  // The caller's offer is held back on its way to the server (only the relay is open), so its
  // ICE candidates are stored, and reach the callee, before it.
  const pageA = await open('earlyIce', 0, { blockWebSocket: true });
  const pageB = await open('earlyIce', 1);
  await pageA.route(/\/api\/p2p\/send-signal\//, async (route) => {
    if (route.request().postDataJSON().type === 'webrtc.offer') {
      await new Promise((resolve) => setTimeout(resolve, 800)); // simulated network latency
    }
    return route.continue();
  });
  await callAndConnect(pageA, pageB);
  const processed = pageB.consoleLines.filter((line) => line.startsWith('[Polling] Processing signal: webrtc.'));
  assert.equal(processed[0], '[Polling] Processing signal: webrtc.ice', 'a candidate overtook the offer');
  // The callee knows the caller's host candidates: they were added once the offer was set.
  const remoteHosts = await pageB.evaluate(async () => {
    let hosts = 0;
    (await window.switchboard.pc.getStats()).forEach((r) => {
      if (r.type === 'remote-candidate' && r.candidateType === 'host') hosts += 1;
    });
    return hosts;
  });
  assert.ok(remoteHosts > 0, 'queued candidates were added');
  assert.ok(!pageB.consoleLines.some((line) => line.includes('Could not add an ICE candidate')));
  await pageA.getByTestId('hangup').click();
  await waitForStatus(pageB, 'ended');
  await pageA.context().close();
  await pageB.context().close();
});

test('a blocked WebSocket falls back to SSE, and the client climbs back once it works', async () => {
  let blocked = true;
  const blockUntilReleased = (context) =>
    context.routeWebSocket(/\/ws\//, (ws) => {
      if (blocked) ws.close({ code: 1008, reason: 'blocked by the test' });
      else ws.connectToServer(); // from now on a plain pass-through
    });
  const page = await open('climb', 0, { query: '?climbIntervalMs=500', setup: blockUntilReleased });
  assert.equal(await transportOf(page), 'sse');
  blocked = false;
  await page.waitForFunction(() => window.switchboard.transport === 'websocket', null, { timeout: 10000 });
  assert.deepEqual(await page.evaluate(() => window.switchboard.transportHistory), ['sse', 'websocket']);
  assert.ok(page.consoleLines.includes('[CallJS] Climbing back to websocket'));

  // Signals still arrive after the switch: a call from the other side rings here.
  const other = await open('climb', 1);
  await other.getByTestId('start-call').click();
  await page.getByTestId('accept-call').waitFor({ timeout: 10000 });
  await other.getByTestId('hangup').click();
  await page.locator('#call-modal').waitFor({ state: 'hidden', timeout: 10000 });
  await page.context().close();
  await other.context().close();
});

test('an ICE restart started by both sides at once renegotiates and the call stays up', async () => {
  const pageA = await open('restart', 0);
  const pageB = await open('restart', 1);
  await callAndConnect(pageA, pageB);
  const ufrags = (page) =>
    page.evaluate(() => {
      const pc = window.switchboard.pc;
      const ufrag = (d) => d && /a=ice-ufrag:(\S+)/.exec(d.sdp)[1];
      return { local: ufrag(pc.currentLocalDescription), remote: ufrag(pc.currentRemoteDescription) };
    });
  const beforeA = await ufrags(pageA);
  const beforeB = await ufrags(pageB);
  // Both offer at once: perfect negotiation lets the polite side yield.
  await Promise.all([
    pageA.evaluate(() => window.switchboard.pc.restartIce()),
    pageB.evaluate(() => window.switchboard.pc.restartIce()),
  ]);
  for (const [page, before] of [
    [pageA, beforeA],
    [pageB, beforeB],
  ]) {
    await page.waitForFunction(
      (old) => {
        const pc = window.switchboard.pc;
        const ufrag = (d) => d && /a=ice-ufrag:(\S+)/.exec(d.sdp)[1];
        return (
          pc.signalingState === 'stable' &&
          pc.connectionState === 'connected' &&
          ufrag(pc.currentLocalDescription) !== old.local &&
          ufrag(pc.currentRemoteDescription) !== old.remote
        );
      },
      before,
      { timeout: 15000, polling: 100 },
    );
  }
  await expectRemoteVideoPlaying(pageA);
  await expectRemoteVideoPlaying(pageB);
  assert.equal(await pageA.getByTestId('call-status').textContent(), 'connected');
  assert.equal(await pageB.getByTestId('call-status').textContent(), 'connected');
  await pageA.getByTestId('hangup').click();
  await waitForStatus(pageB, 'ended');
  await pageA.context().close();
  await pageB.context().close();
});

test(
  'a broken media path shows reconnecting, gets an ICE restart, and the call comes back',
  { skip: !isolated && 'needs the loopback-only network namespace of run.sh (it starves UDP on lo)' },
  async () => {
    const pageA = await open('broken', 0);
    const pageB = await open('broken', 1);
    await callAndConnect(pageA, pageB);
    const tc = (...args) => execFileSync('tc', args, { stdio: 'pipe' }).toString();
    // Starve UDP on loopback (an 8 bit/s class: nothing gets through), so the media and the ICE
    // checks stop while signalling (TCP) goes on. This kernel has no tc drop action; a
    // starved htb class does the same.
    tc('qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10');
    try {
      tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit');
      tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', '8bit', 'ceil', '8bit', 'burst', '1b', 'cburst', '1b');
      for (const [protocol, match, prio] of [['ip', 'ip', '1'], ['ipv6', 'ip6', '2']]) {
        tc('filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', protocol, 'prio', prio, 'u32',
          'match', match, 'protocol', '17', '0xff', 'flowid', '1:20');
      }
      await waitForStatus(pageA, 'reconnecting', 20000);
      await waitForStatus(pageB, 'reconnecting', 20000);
      // Keep the path broken until one side has restarted ICE (a few seconds after the break).
      await Promise.race(
        [pageA, pageB].map((page) =>
          page.waitForFunction(() => window.switchboard.call.iceRestarts > 0, null, { timeout: 15000 }),
        ),
      );
    } finally {
      tc('qdisc', 'del', 'dev', 'lo', 'root');
    }
    await waitForStatus(pageA, 'connected', 20000);
    await waitForStatus(pageB, 'connected', 20000);
    assert.ok(
      [pageA, pageB].some((page) => page.consoleLines.some((line) => line.includes('restarting ICE'))),
      'an ICE restart was tried',
    );
    // After the restart both sides use new ICE credentials, and the status log tells the story.
    const log = await pageA.evaluate(() => window.switchboard.call.statusLog.map((s) => s.status));
    assert.deepEqual(log.slice(-2), ['reconnecting', 'connected']);
    await expectRemoteVideoPlaying(pageB);
    await pageA.getByTestId('hangup').click();
    await waitForStatus(pageB, 'ended');
    await pageA.context().close();
    await pageB.context().close();
  },
);
