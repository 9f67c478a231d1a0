// acks.test.mjs — how the client acknowledges what it processed over the WebSocket: at most one
// `ack` frame per event-loop turn, with the highest seq processed, so a burst of signals costs
// the server one ack, not one per signal (issue 12), and nothing is left unacknowledged.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairsFixture, openAs, openChat, transportOf } from './harness.mjs';

const PAIRS = { burst: ['alice', 'bob'] };
const fixture = pairsFixture(PAIRS);

// Counts the `ack` frames the page sends, by wrapping WebSocket.send before the app loads.
const countAcks = () => {
  window.__acks = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const frame = JSON.parse(data);
      if (frame.op === 'ack') window.__acks.push(frame.seq);
    } catch {
      // not JSON: not ours to count
    }
    return send.call(this, data);
  };
};

test('a burst of 50 signals over the WebSocket is acknowledged with fewer acks than signals, up to the last seq', async () => {
  const chat = fixture.chatOf.burst;
  const bob = await openAs(fixture.browser, fixture.server, 'bob', { initScripts: [countAcks] });
  assert.equal(await transportOf(bob), 'websocket');
  const alice = await openAs(fixture.browser, fixture.server, 'alice');
  await openChat(alice, chat);
  await transportOf(alice);
  const before = await bob.evaluate(() => window.__acks.length);

  // Alice pipelines 50 sends over a WebSocket of her own: they reach bob as one burst.
  await alice.evaluate(async (chatId) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws/p2p/?last_seq=0`);
    await new Promise((resolve) => ws.addEventListener('open', resolve, { once: true }));
    let answered = 0;
    const done = new Promise((resolve) =>
      ws.addEventListener('message', (event) => {
        if (JSON.parse(event.data).op === 'sent' && ++answered === 50) resolve();
      }),
    );
    for (let n = 0; n < 50; n += 1) {
      ws.send(JSON.stringify({ op: 'send', ref: n, chat_id: chatId, type: 'test.burst', payload: { n } }));
    }
    await done;
    ws.close();
  }, chat);

  // Bob processed all 50 (his cursor reached the last one) and acknowledged up to it.
  const last = await bob.waitForFunction(
    (count) => window.switchboard.cursor >= count && window.__acks.length > 0 && window.__acks.at(-1) >= window.switchboard.cursor
      ? window.switchboard.cursor
      : false,
    50,
    { timeout: 15000, polling: 50 },
  );
  const acks = await bob.evaluate((from) => window.__acks.slice(from), before);
  const cursor = await last.jsonValue();
  assert.equal(acks.at(-1), cursor, 'the last ack covers the last signal processed');
  // One per signal before; now one per turn in which signals arrived (the server pushes what its
  // group commits stored, so a burst comes in a few turns: 11 in one run here).
  assert.ok(acks.length < 50, `50 signals took ${acks.length} ack frames, one each: ${acks}`);
  console.log(`50 signals, ${acks.length} ack frames: ${acks}`);
  for (let i = 1; i < acks.length; i += 1) assert.ok(acks[i] > acks[i - 1], `acks only move forward: ${acks}`);
});
