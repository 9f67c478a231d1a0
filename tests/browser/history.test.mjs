// history.test.mjs — calls leave a trace in the chat (call event messages, worded per viewer,
// with Call back), stored so they survive a reload; the chat list shows the last message, an
// unread count (and the title the total), and whether the other person is online.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pairsFixture, openAs, openChat, transportOf, waitForStatus, screenshot } from './harness.mjs';

const PAIRS = {
  history: ['alice', 'bob'],
  unread: ['carol', 'dave'],
  presence: ['erin', 'frank'],
};

const fixture = pairsFixture(PAIRS);
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PHONE = { width: 390, height: 844 };

/** axe-core: no serious or critical violation in what this file adds (rows, badges, dots). */
async function expectAccessible(page, label) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ['violations'] });
    return results.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`) }));
  });
  assert.deepEqual(violations, [], `${label}: axe found\n${JSON.stringify(violations, null, 2)}`);
}
const { chatOf } = fixture;

async function open(key, index, options = {}) {
  const page = await openAs(fixture.browser, fixture.server, PAIRS[key][index], options);
  await transportOf(page);
  return page;
}

const events = (page) =>
  page.locator('[data-testid="call-event"]').evaluateAll((rows) =>
    rows.map((row) => ({ outcome: row.dataset.outcome, text: row.querySelector('strong').textContent })),
  );

const item = (page, chatId) => page.locator(`[data-testid="chat-item"][data-chat-id="${chatId}"]`);

test('call events appear on both sides, worded for each, survive a reload, and Call back calls', async () => {
  const alice = await open('history', 0);
  const bob = await open('history', 1);
  const chatId = chatOf.history;
  await openChat(alice, chatId);
  await openChat(bob, chatId);

  // A call that connects and is hung up: "Video call · 0:0x" on both sides.
  await alice.getByTestId('start-call').click();
  await bob.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(alice, 'connected');
  await waitForStatus(bob, 'connected');
  await alice.getByTestId('hangup').click();
  await waitForStatus(bob, 'ended');
  await bob.getByTestId('call-close').click();
  await alice.getByTestId('call-close').click();

  // A call Bob declines.
  await alice.getByTestId('start-call').click();
  await bob.getByTestId('decline-call').click({ timeout: 15000 });
  await waitForStatus(alice, 'ended');
  await alice.getByTestId('call-close').click();

  // A call nobody answers: "No answer" for Alice, "Missed video call" for Bob.
  await alice.evaluate(() => localStorage.setItem('switchboard.ringTimeoutMs', '2000'));
  await alice.reload();
  await openChat(alice, chatId);
  await transportOf(alice);
  await alice.getByTestId('start-call').click();
  await bob.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await waitForStatus(alice, 'failed', 10000);
  await alice.getByTestId('call-close').click();
  await alice.evaluate(() => localStorage.removeItem('switchboard.ringTimeoutMs'));

  const expectHistory = async (page, wanted) => {
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="call-event"]').length >= n, wanted.length, {
      timeout: 10000,
    });
    const seen = await events(page);
    assert.equal(seen.length, wanted.length, JSON.stringify(seen));
    wanted.forEach(([outcome, text], i) => {
      assert.equal(seen[i].outcome, outcome);
      assert.match(seen[i].text, text);
    });
  };
  const forAlice = [
    ['ended', /^Video call · 0:\d\d$/],
    ['declined', /^Declined$/],
    ['missed', /^No answer$/],
  ];
  const forBob = [
    ['ended', /^Video call · 0:\d\d$/],
    ['declined', /^Declined$/],
    ['missed', /^Missed video call$/],
  ];
  await expectHistory(alice, forAlice);
  await expectHistory(bob, forBob);
  await screenshot(bob, 'history-callee');
  await expectAccessible(bob, 'chat with call events');
  await bob.setViewportSize(PHONE);
  await screenshot(bob, 'history-callee-phone');
  await expectAccessible(bob, 'chat with call events (phone)');
  await bob.setViewportSize({ width: 1100, height: 720 });

  // Stored: after a reload they are still there.
  for (const page of [alice, bob]) {
    await page.reload();
    await openChat(page, chatId);
  }
  await expectHistory(alice, forAlice);
  await expectHistory(bob, forBob);
  // The chat list's preview sums up the last call.
  assert.match(await item(bob, chatId).textContent(), /Missed video call/);

  // Call back places a call.
  await transportOf(bob);
  await bob.locator('[data-testid="call-event"][data-outcome="missed"] [data-testid="call-back"]').click();
  await alice.getByTestId('accept-call').waitFor({ timeout: 15000 });
  await waitForStatus(bob, 'ringing');
  await bob.getByTestId('hangup').click();
  await alice.context().close();
  await bob.context().close();
});

test('unread count in the chat list and the title; opening the chat reads it, also after a reload', async () => {
  const carol = await open('unread', 0);
  const dave = await open('unread', 1);
  const chatId = chatOf.unread;
  await openChat(carol, chatId);
  // Dave looks at no chat.
  for (const text of ['one', 'two', 'three']) {
    await carol.getByTestId('message-input').fill(text);
    await carol.getByTestId('message-send').click();
  }
  const badge = item(dave, chatId).getByTestId('unread-count');
  await dave.waitForFunction(
    (id) => document.querySelector(`[data-chat-id="${id}"] [data-testid="unread-count"]`)?.textContent === '3',
    chatId,
    { timeout: 10000 },
  );
  assert.equal(await dave.title(), '(3) Switchboard');
  assert.match(await item(dave, chatId).textContent(), /three/);
  await screenshot(dave, 'chat-list-unread');
  await expectAccessible(dave, 'chat list with unread count and presence');

  // The count is the server's: a reload keeps it.
  await dave.reload();
  await transportOf(dave);
  await badge.waitFor({ timeout: 10000 });
  assert.equal(await badge.textContent(), '3');

  const readPosted = dave.waitForResponse((r) => r.url().endsWith(`/api/chats/${chatId}/read`), { timeout: 5000 });
  await openChat(dave, chatId);
  await badge.waitFor({ state: 'detached', timeout: 5000 });
  assert.equal(await dave.title(), 'Switchboard');
  // The read marker moved on the server: after a reload the chat is still read.
  assert.equal((await readPosted).status(), 200);
  await dave.goto(dave.url().replace(/#.*$/, ''));
  await transportOf(dave);
  assert.equal(await item(dave, chatId).getByTestId('unread-count').count(), 0);
  assert.equal(await dave.title(), 'Switchboard');
  await carol.context().close();
  await dave.context().close();
});

test('presence: the other person’s dot goes online when they sign in and offline when they leave', async () => {
  const erin = await open('presence', 0);
  const chatId = chatOf.presence;
  await openChat(erin, chatId);
  const listDot = item(erin, chatId).getByTestId('presence');
  const headDot = erin.locator('.chat-head [data-testid="presence"]');
  await listDot.waitFor({ timeout: 5000 });
  assert.equal(await listDot.getAttribute('data-online'), 'false');
  assert.equal(await headDot.getAttribute('data-online'), 'false');
  assert.match(await erin.locator('#chat-sub').textContent(), /Offline/);

  // Erin's page notices on its next refresh (every 15 s, or when she comes back to the tab,
  // which is what the test does: a focus event, repeated until the list says so).
  const waitForPresence = (online) =>
    erin.waitForFunction(
      ([id, wanted]) => {
        window.dispatchEvent(new Event('focus'));
        return document.querySelector(`[data-chat-id="${id}"] [data-testid="presence"]`)?.dataset.online === wanted;
      },
      [chatId, String(online)],
      { timeout: 15000, polling: 1000 },
    );
  const frank = await open('presence', 1);
  await waitForPresence(true);
  assert.equal(await headDot.getAttribute('data-online'), 'true');
  assert.match(await erin.locator('#chat-sub').textContent(), /Online/);
  await screenshot(erin, 'presence-online');

  await frank.context().close();
  await waitForPresence(false);
  assert.match(await erin.locator('#chat-sub').textContent(), /Offline/);
  await erin.context().close();
});
