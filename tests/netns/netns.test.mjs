// netns.test.mjs — calls across a real network: the server, alice and bob on three hosts
// (network namespaces) where alice and bob reach the server but not each other. Two Chromiums,
// one per host, sign in over HTTPS with the server's self-signed certificate and call through
// the UI. With the embedded TURN server the call connects through the relay; without it the call
// fails and both sides say why; with credentials that expire mid-call the call keeps its media.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTopology, SERVER_IP, SERVER_IP_B, ALICE_IP, BOB_IP } from './topology.mjs';
import {
  startServer,
  launchBrowserIn,
  openAs,
  openChat,
  waitForStatus,
  reasonOf,
  selectedPair,
  settledPair,
  candidates,
  isRelayed,
  bytesReceived,
  waitBytesAbove,
  turnUsernames,
  screenshot,
  keepEvidence,
  startCoturn,
  stunAnswerFrom,
} from './harness.mjs';

let topology;

before(async () => {
  topology = await createTopology();
});

after(async () => {
  if (topology) await topology.destroy();
});

/**
 * One scenario's hosts: a server started with `env`, a Chromium in alice's namespace and one in
 * bob's, each signed in with the chat open. `body({ server, alice, bob })` runs the scenario; on
 * failure both pages' screenshots and console logs go to test-artifacts/netns/.
 */
async function scenario(label, env, body, { query = '' } = {}) {
  const server = await startServer(topology, { env, label: `${label}-server` });
  const browsers = [];
  const pages = [];
  try {
    browsers.push(await launchBrowserIn(topology.alice, server));
    browsers.push(await launchBrowserIn(topology.bob, server));
    const alice = await openAs(browsers[0], server, 'alice', { query });
    pages.push(alice);
    const bob = await openAs(browsers[1], server, 'bob', { query });
    pages.push(bob);
    await openChat(alice, server.chatId);
    await openChat(bob, server.chatId);
    await body({ server, alice, bob });
  } catch (err) {
    await keepEvidence(label, pages);
    throw err;
  } finally {
    for (const browser of browsers) await browser.close().catch(() => {});
    await server.stop();
  }
}

/** Alice presses Start Video Call, bob accepts when it rings. */
async function placeCall(alice, bob) {
  await alice.getByTestId('start-call').click();
  await bob.getByTestId('accept-call').waitFor({ timeout: 20000 });
  await bob.getByTestId('accept-call').click();
}

/** Both sides connected through the relay, as the call window says and getStats() shows. */
async function expectRelayedCall(alice, bob) {
  await waitForStatus(alice, 'connected', 30000);
  await waitForStatus(bob, 'connected', 30000);
  for (const page of [alice, bob]) {
    const pair = await settledPair(page, true);
    assert.ok(
      isRelayed(pair),
      `${page.who}'s selected candidate pair is not relayed: ${JSON.stringify(pair)}\n` +
        `candidates:\n  ${(await candidates(page)).join('\n  ')}`,
    );
    console.log(`${page.who}: selected pair ${JSON.stringify(pair)}`);
    // The relay is the server's: nothing else could carry media between these two hosts.
    const relayEnd = pair.local === 'relay' ? pair.localAddress : pair.remoteAddress;
    assert.ok(
      [SERVER_IP, SERVER_IP_B].some((ip) => relayEnd.startsWith(`${ip}:`)),
      `${page.who}'s relay candidate ${relayEnd} is not on the server`,
    );
    // The call window says so to the person, too.
    await page
      .waitForFunction(() => document.querySelector('[data-testid="call-path"]')?.dataset.path === 'relayed', null, {
        timeout: 10000,
        polling: 100,
      })
      .catch(async () => {
        const shown = await page.getByTestId('call-path').evaluate((node) => `${node.dataset.path} "${node.textContent}"`);
        assert.fail(`${page.who}'s call window must say relayed; it says ${shown} (getStats: ${JSON.stringify(pair)})`);
      });
    assert.match(await page.getByTestId('call-path').textContent(), /relayed/i);
  }
  // Media flows both ways through the relay.
  await waitBytesAbove(alice, 0);
  await waitBytesAbove(bob, 0);
}

test('alice and bob reach the server but not each other', async () => {
  assert.ok(await topology.canPing(topology.alice, SERVER_IP), 'alice reaches the server');
  assert.ok(await topology.canPing(topology.bob, SERVER_IP), 'bob reaches the server at 10.231.1.1 too');
  assert.ok(!(await topology.canPing(topology.alice, BOB_IP)), 'alice must not reach bob');
  assert.ok(!(await topology.canPing(topology.bob, ALICE_IP)), 'bob must not reach alice');
});

test('with the embedded TURN server, the call connects through the relay', async () => {
  await scenario('relay', {}, async ({ alice, bob }) => {
    // Both ask the STUN/TURN port at 10.231.1.1 (bob from the server's other link): each must
    // be answered from that address, or the browser drops the answer as from a stranger.
    for (const page of [alice, bob]) {
      const ns = page === alice ? topology.alice : topology.bob;
      assert.equal(await stunAnswerFrom(ns, SERVER_IP), `${SERVER_IP}:3478`, `${page.who}'s STUN answer came from elsewhere`);
    }
    await placeCall(alice, bob);
    await expectRelayedCall(alice, bob);
    await screenshot(alice, 'relay-alice');
    await screenshot(bob, 'relay-bob');
    await alice.getByTestId('hangup').click();
    await waitForStatus(alice, 'ended');
    await waitForStatus(bob, 'ended');
  });
});

test('without TURN, the call fails and both sides say it found no network path or relay', async () => {
  await scenario('no-turn', { SWITCHBOARD_TURN_ENABLED: 'false' }, async ({ alice, bob }) => {
    await placeCall(alice, bob);
    // ICE has to run out of candidate pairs (and the client retry once) before it gives up.
    await waitForStatus(alice, 'failed', 90000);
    await waitForStatus(bob, 'failed', 30000);
    await screenshot(alice, 'no-turn-alice');
    await screenshot(bob, 'no-turn-bob');
    for (const page of [alice, bob]) {
      const reason = await reasonOf(page);
      assert.match(reason, /network|relay|TURN/i, `${page.who} must be told why: "${reason}"`);
      assert.doesNotMatch(reason, /ended the call/, `${page.who} must not be told the other side hung up`);
    }
  });
});

test('with an external coturn (use-auth-secret) instead of the embedded server, the call connects through it', async () => {
  // The operator's alternative: the embedded server off, turn_urls and turn_secret pointing at
  // coturn, which checks the same TURN REST credentials.
  const secret = 'netns-test-shared-secret';
  const coturn = await startCoturn(topology, secret);
  try {
    const env = {
      SWITCHBOARD_TURN_ENABLED: 'false',
      SWITCHBOARD_TURN_SECRET: secret,
      SWITCHBOARD_TURN_URLS: `["turn:${SERVER_IP}:3478?transport=udp","turn:${SERVER_IP}:3478?transport=tcp"]`,
    };
    await scenario('coturn', env, async ({ alice, bob }) => {
      await placeCall(alice, bob);
      await expectRelayedCall(alice, bob);
      await screenshot(alice, 'coturn-alice');
    });
    assert.match(coturn.log(), /ALLOCATE processed, success/, 'the allocations were coturn\'s');
  } finally {
    await coturn.stop();
  }
});

test('credentials that expire mid-call do not drop it: media still flows 40 s on', async () => {
  const env = { SWITCHBOARD_TURN_CREDENTIAL_TTL: '5s', SWITCHBOARD_TURN_ALLOCATION_LIFETIME: '20s' };
  await scenario('short-ttl', env, async ({ alice, bob }) => {
    await placeCall(alice, bob);
    await expectRelayedCall(alice, bob);
    const connectedAt = Date.now();
    // Addresses only: a peer-reflexive candidate may still be renamed `relay` meanwhile.
    const ends = async (page) => {
      const pair = await selectedPair(page);
      return pair && `${pair.localAddress} -> ${pair.remoteAddress}`;
    };
    const pairsAtStart = [await ends(alice), await ends(bob)];
    // The relay allocations each side holds, made while its credentials were still valid.
    const relaysOf = async (page) =>
      (await candidates(page)).filter((c) => c.startsWith('local relay ')).map((c) => c.split(' ')[2]).sort();
    const relaysAtStart = [await relaysOf(alice), await relaysOf(bob)];
    const expiries = (await turnUsernames(alice)).concat(await turnUsernames(bob)).map((u) => Number(String(u).split(':')[0]));
    assert.ok(expiries.length > 0 && expiries.every(Number.isFinite), `TURN usernames carry their expiry: ${expiries}`);

    // The behaviour under test is time passing: the credentials expire (5 s) and the 20 s
    // allocations are refreshed (Chromium refreshes at half the lifetime) with them. Every 5 s
    // for 40 s, both sides must still be connected and still be receiving media.
    let bytes = [await bytesReceived(alice), await bytesReceived(bob)];
    while (Date.now() - connectedAt < 40000) {
      await new Promise((resolve) => setTimeout(resolve, 5000));
      const pages = [alice, bob];
      for (let i = 0; i < 2; i += 1) {
        const page = pages[i];
        const status = await page.getByTestId('call-status').textContent();
        assert.equal(status, 'connected', `${page.who} is ${status} after ${Math.round((Date.now() - connectedAt) / 1000)} s`);
        bytes[i] = await waitBytesAbove(page, bytes[i], 5000);
      }
    }
    // The credentials really did expire during the call, and it is still relayed.
    const now = Date.now() / 1000;
    assert.ok(expiries.every((expiry) => expiry < now - 20), `credentials ${expiries} expired well before ${now}`);
    // The same allocations still carry it — 40 s is twice their 20 s lifetime, so they were
    // refreshed with the expired credentials — not new ones from an ICE restart.
    // ICE may move between working relay pairs (e.g. from a TCP- to a UDP-based allocation, which
    // it prefers), so the pair itself may change; what must not happen is a new allocation: one
    // made now would have been refused (the credentials have expired).
    const pairsAtEnd = [await ends(alice), await ends(bob)];
    const relaysAtEnd = [await relaysOf(alice), await relaysOf(bob)];
    assert.deepEqual(relaysAtEnd, relaysAtStart, `no new relay allocations (pairs ${pairsAtStart} → ${pairsAtEnd})`);
    for (const [i, page] of [alice, bob].entries()) {
      const local = (await selectedPair(page)).localAddress;
      assert.ok(relaysAtStart[i].includes(local), `${page.who} relays through ${local}, one of ${relaysAtStart[i]}`);
    }
    assert.ok(isRelayed(await selectedPair(alice)) && isRelayed(await selectedPair(bob)), 'still relayed');
    for (const page of [alice, bob]) {
      const statuses = await page.evaluate(() => window.switchboard.call.statusLog.map((s) => s.status));
      assert.ok(!statuses.includes('reconnecting'), `${page.who}'s call never went through reconnecting: ${statuses}`);
    }
    await screenshot(alice, 'short-ttl-alice');
    await screenshot(bob, 'short-ttl-bob');
  });
});
