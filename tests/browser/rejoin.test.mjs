// rejoin.test.mjs — a reload does not end a call. Leaving the page during a call asks first
// (beforeunload); the reloaded tab finds its call on the server (GET /api/calls/active) and
// rejoins with a fresh offer, without anyone pressing Call, while the other side shows
// "reconnecting" — never "ended". A dropped WebSocket does not end the call either.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  pairsFixture,
  waitForStatus,
  expectRemoteVideoPlaying,
  screenshot,
} from './harness.mjs';

const PAIRS = {
  calleeReloads: ['alice', 'bob'],
  callerReloads: ['carol', 'dave'],
  wsDrops: ['erin', 'frank'],
  ringing: ['gina', 'hank'],
};

const fixture = pairsFixture(PAIRS);

const { open } = fixture;

async function connect(caller, callee) {
  await caller.getByTestId('start-call').click();
  await callee.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(caller, 'connected');
  await waitForStatus(callee, 'connected');
}

const statuses = (page) => page.evaluate(() => window.switchboard.call.statusLog.map((s) => s.status));

/** Reloads `page` mid-call, accepting the "Leave call?" prompt; returns whether it was asked. */
async function reloadAccepting(page) {
  let asked = false;
  const onDialog = (dialog) => {
    if (dialog.type() === 'beforeunload') asked = true;
    dialog.accept().catch(() => {});
  };
  page.on('dialog', onDialog);
  await page.reload();
  page.off('dialog', onDialog);
  return asked;
}

async function reloadMidCall(reloader, other) {
  await expectRemoteVideoPlaying(other);
  const callId = await other.evaluate(() => window.switchboard.call.id);
  const asked = await reloadAccepting(reloader);
  assert.ok(asked, 'leaving the page during a call asks first (beforeunload)');
  // Nobody presses anything: the reloaded tab is back in the same call.
  await waitForStatus(reloader, 'connected', 20000);
  await waitForStatus(other, 'connected', 20000);
  assert.equal(await reloader.evaluate(() => window.switchboard.call.id), callId);
  await expectRemoteVideoPlaying(reloader);
  await expectRemoteVideoPlaying(other);
  const log = await statuses(other);
  assert.ok(!log.includes('ended') && !log.includes('failed'), `the other side never ended: ${log}`);
  assert.ok(log.includes('reconnecting'), `the other side showed reconnecting: ${log}`);
  assert.deepEqual((await statuses(reloader)).slice(0, 1), ['reconnecting']);
  // The call's clock goes on from when it was answered, not from the reload.
  assert.match(await reloader.locator('#call-timer').textContent(), /^\d+:\d\d$/);
}

test('the callee reloads mid-call: back to connected without pressing Call; the caller never shows "ended"', async () => {
  const alice = await open('calleeReloads', 0);
  const bob = await open('calleeReloads', 1);
  await connect(alice, bob);
  await reloadMidCall(bob, alice);
  await screenshot(bob, 'rejoin-callee-after-reload');
  // The rejoined tab is fully in the call: its own Hang up ends it for both.
  await bob.getByTestId('hangup').click();
  await waitForStatus(alice, 'ended');
  assert.equal(await alice.getByTestId('call-reason').getAttribute('data-reason'), 'hangup');
  await alice.context().close();
  await bob.context().close();
});

test('the caller reloads mid-call: back to connected; the callee never shows "ended"', async () => {
  const carol = await open('callerReloads', 0);
  const dave = await open('callerReloads', 1);
  await connect(carol, dave);
  await reloadMidCall(carol, dave);
  // And once more, the other way round, in the same call.
  await reloadMidCall(dave, carol);
  await dave.getByTestId('hangup').click();
  await waitForStatus(carol, 'ended');
  await carol.context().close();
  await dave.context().close();
});

test('a network loss mid-call (WebSocket and HTTP down for 10 s during a renegotiation) does not end the call', async () => {
  let down = false;
  const sockets = [];
  const flakyNetwork = async (context) => {
    await context.route(/\/api\/p2p\//, (route) => (down ? route.abort('internetdisconnected') : route.continue()));
    await context.routeWebSocket(/\/ws\//, (ws) => {
      if (down) {
        ws.close({ code: 1006, reason: 'network down' });
        return;
      }
      const upstream = ws.connectToServer();
      ws.onMessage((message) => upstream.send(message));
      upstream.onMessage((message) => ws.send(message));
      sockets.push(ws);
    });
  };
  const erin = await open('wsDrops', 0, { setup: flakyNetwork });
  const frank = await open('wsDrops', 1);
  await connect(erin, frank);
  const ufrag = (page) =>
    page.evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.switchboard.pc.currentRemoteDescription.sdp)[1]);
  const before = await ufrag(frank);

  down = true;
  for (const ws of sockets.splice(0)) await ws.close({ code: 1006, reason: 'network down' }).catch(() => {});
  // A renegotiation (an ICE restart) starts while nothing can be sent: its offer cannot leave.
  await erin.evaluate(() => window.switchboard.pc.restartIce());
  await new Promise((resolve) => setTimeout(resolve, 10000));
  down = false;

  // The offer goes out once the network is back, and the renegotiation completes.
  await frank.waitForFunction(
    (old) => /a=ice-ufrag:(\S+)/.exec(window.switchboard.pc.currentRemoteDescription.sdp)[1] !== old,
    before,
    { timeout: 30000, polling: 200 },
  );
  await waitForStatus(erin, 'connected');
  for (const page of [erin, frank]) {
    const log = await statuses(page);
    assert.ok(!log.includes('ended') && !log.includes('failed'), `${log}`);
  }
  await expectRemoteVideoPlaying(frank);
  assert.notEqual(await ufrag(frank), before);
  await erin.context().close();
  await frank.context().close();
});

test('a reload while it rings cancels nothing: the caller rings on, the callee rings again, Accept connects', async () => {
  const gina = await open('ringing', 0);
  const hank = await open('ringing', 1);
  await gina.getByTestId('start-call').click();
  await hank.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await waitForStatus(gina, 'ringing');
  const callId = await gina.evaluate(() => window.switchboard.call.id);

  // The callee reloads: nothing is asked (nothing to lose), and the call rings there again.
  assert.equal(await reloadAccepting(hank), false);
  await hank.getByTestId('accept-call').waitFor({ timeout: 15000 });
  assert.equal(await hank.evaluate(() => window.switchboard.call.id), callId);
  // The caller reloads: asked first, and back to ringing the same call.
  assert.equal(await reloadAccepting(gina), true);
  await waitForStatus(gina, 'ringing', 15000);
  assert.equal(await gina.evaluate(() => window.switchboard.call.id), callId);
  assert.equal(await hank.getByTestId('call-status').textContent(), 'ringing');

  await hank.getByTestId('accept-call').click();
  await waitForStatus(gina, 'connected');
  await waitForStatus(hank, 'connected');
  await expectRemoteVideoPlaying(hank);
  await gina.getByTestId('hangup').click();
  await waitForStatus(hank, 'ended');
  await gina.context().close();
  await hank.context().close();
});
