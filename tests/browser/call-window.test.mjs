// call-window.test.mjs — the call window around a call: it closes by itself a few seconds after a
// call you ended, but stays (with its reason) when the other side ended it; it can shrink to a
// tile so the chat stays usable during the call; its status changes are spoken (aria-live); and
// the remote video can go picture-in-picture.

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
} from './harness.mjs';

const PAIRS = {
  autoClose: ['alice', 'bob'],
  minimize: ['carol', 'dave'],
};
const CLOSE_MS = 1500;

const fixture = pairsFixture(PAIRS);
const { chatOf } = fixture;

/** Keeps every text the call window's live region speaks, in order. */
function recordAnnouncements() {
  window.__announced = [];
  document.addEventListener('DOMContentLoaded', () => {
    const region = document.querySelector('#call-announcer');
    new MutationObserver(() => window.__announced.push(region.textContent)).observe(region, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
}

async function openPair(key, options = {}) {
  const [a, b] = PAIRS[key];
  const pageA = await openAs(fixture.browser, fixture.server, a, options);
  const pageB = await openAs(fixture.browser, fixture.server, b, options);
  await openChat(pageA, chatOf[key]);
  await openChat(pageB, chatOf[key]);
  await transportOf(pageA);
  await transportOf(pageB);
  return [pageA, pageB];
}

async function connect(pageA, pageB) {
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(pageA, 'connected');
  await waitForStatus(pageB, 'connected');
}

const modalShown = (page) => page.evaluate(() => !document.querySelector('#call-modal').hidden);

async function closePages(...pages) {
  for (const page of pages) await page.context().close();
}

test('the window closes by itself after the call you ended, and stays with the reason when the other side ended it', async () => {
  const query = `?endedCloseMs=${CLOSE_MS}`;
  const [pageA, pageB] = await openPair('autoClose', { query, initScripts: [recordAnnouncements] });
  await connect(pageA, pageB);

  await pageA.getByTestId('hangup').click();
  await waitForStatus(pageA, 'ended'); // shown for a moment first
  const endedAt = Date.now();
  await waitForStatus(pageB, 'ended');
  await pageA.locator('#call-modal').waitFor({ state: 'hidden', timeout: CLOSE_MS + 3000 });
  assert.ok(Date.now() - endedAt >= CLOSE_MS - 300, 'not closed before endedCloseMs');

  // B did not end it: B's window keeps saying why, well past the time A's closed in.
  const stillOpen = await pageB.evaluate(
    (ms) =>
      new Promise((resolve) => {
        let open = true;
        const timer = setInterval(() => (open = open && !document.querySelector('#call-modal').hidden), 50);
        setTimeout(() => {
          clearInterval(timer);
          resolve(open);
        }, ms);
      }),
    CLOSE_MS * 2,
  );
  assert.equal(stillOpen, true, "the other side's window stays open");
  assert.match(await reasonOf(pageB), /Alice ended the call/);
  await pageB.getByTestId('call-close').click();
  await pageB.locator('#call-modal').waitFor({ state: 'hidden', timeout: 2000 });

  // What a screen reader heard, in order.
  const heardA = await pageA.evaluate(() => window.__announced);
  const heardB = await pageB.evaluate(() => window.__announced);
  assert.deepEqual(heardA.filter((t) => /^(Ringing|Connected)/.test(t)), ['Ringing Bob', 'Connected']);
  assert.equal(heardA.at(-1), 'Call ended: You ended the call.');
  assert.equal(heardB[0], 'Incoming video call from Alice');
  assert.ok(heardB.includes('Connected'));
  assert.equal(heardB.at(-1), 'Call ended: Alice ended the call.');
  await closePages(pageA, pageB);
});

test('minimized, the call goes on in a tile and the chat stays usable; Expand brings the window back', async () => {
  const [pageA, pageB] = await openPair('minimize', { viewport: { width: 390, height: 844 } });
  await connect(pageA, pageB);
  assert.equal(await pageA.evaluate(() => document.querySelector('#main-view').inert), true);

  await pageA.getByTestId('call-minimize').click();
  assert.equal(await pageA.evaluate(() => document.querySelector('#main-view').inert), false, 'page usable');
  assert.equal(await pageA.locator('#call-modal').getAttribute('aria-modal'), 'false');
  await pageA.getByTestId('hangup').waitFor({ state: 'visible' });
  await expectRemoteVideoPlaying(pageA);
  // Type and send a message with the call running, by clicking (the tile covers nothing needed).
  await pageA.getByTestId('message-input').click();
  await pageA.keyboard.type('Sending this mid-call');
  await pageA.getByTestId('message-send').click();
  await pageB.locator('[data-testid="message"]', { hasText: 'Sending this mid-call' }).waitFor({ timeout: 10000 });
  // Not modal: Tab may leave the tile.
  await pageA.keyboard.press('Tab');
  await screenshot(pageA, 'call-minimized-phone');

  await pageA.getByTestId('call-expand').click();
  assert.equal(await pageA.evaluate(() => document.querySelector('#main-view').inert), true);
  assert.equal(await pageA.evaluate(() => document.activeElement.dataset.testid), 'hangup');
  await waitForStatus(pageA, 'connected');

  // Picture-in-picture of the remote video, where the browser has it.
  const pip = pageA.getByTestId('call-pip');
  if (await pageA.evaluate(() => document.pictureInPictureEnabled)) {
    await pip.click();
    await pageA.waitForFunction(
      () => document.pictureInPictureElement === document.querySelector('#remote-video'),
      null,
      { timeout: 5000 },
    );
    assert.equal(await pip.getAttribute('aria-pressed'), 'true');
    await pip.click();
    await pageA.waitForFunction(() => !document.pictureInPictureElement, null, { timeout: 5000 });
  } else {
    assert.equal(await pip.isHidden(), true, 'no PiP button where the browser has none');
  }

  await pageB.getByTestId('hangup').click();
  await waitForStatus(pageA, 'ended');
  assert.ok(await modalShown(pageA));
  await closePages(pageA, pageB);
});
