// devices.test.mjs — choosing the camera, microphone and speaker: the settings panel lists the
// browser's (fake) devices, a choice outlives a reload and is what a call then uses (still one
// click on Start Video Call), and a camera switched during a call keeps the call going.
//
// Chromium's fake capture gives two cameras here (`device-count=2`), so there is a real choice.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import {
  CHROMIUM,
  LAUNCH_ARGS,
  startServer,
  openAs,
  openChat,
  waitForStatus,
  expectRemoteVideoPlaying,
  screenshot,
} from './harness.mjs';

const PAIRS = {
  settings: ['alice', 'bob'],
  oneClick: ['carol', 'dave'],
  switching: ['erin', 'frank'],
};

const fixture = { server: null, browser: null, chatOf: {} };

before(async () => {
  const users = Object.values(PAIRS)
    .flat()
    .map((u) => [u, u[0].toUpperCase() + u.slice(1)]);
  fixture.server = await startServer({ users, chats: Object.values(PAIRS) });
  Object.keys(PAIRS).forEach((key, i) => {
    fixture.chatOf[key] = fixture.server.chatIds[i];
  });
  const args = LAUNCH_ARGS.map((arg) =>
    arg === '--use-fake-device-for-media-stream' ? '--use-fake-device-for-media-stream=device-count=2' : arg,
  );
  fixture.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
});

after(async () => {
  if (fixture.browser) await fixture.browser.close();
  if (fixture.server) await fixture.server.stop();
});

async function closePages(...pages) {
  for (const page of pages) await page.context().close();
}

const optionLabels = (page, testId) =>
  page.evaluate((id) => [...document.querySelector(`[data-testid="${id}"]`).options].map((o) => o.textContent), testId);

const selectedLabel = (page, testId) =>
  page.evaluate((id) => {
    const select = document.querySelector(`[data-testid="${id}"]`);
    return select.options[select.selectedIndex]?.textContent;
  }, testId);

/** Opens the settings panel from the sidebar and waits until the cameras are listed. */
async function openSettings(page) {
  await page.getByTestId('open-settings').click();
  await page.getByTestId('device-panel').waitFor({ state: 'visible', timeout: 5000 });
  await page.waitForFunction(() => document.querySelector('[data-testid="camera-select"]').options.length >= 3, null, {
    timeout: 10000,
  });
}

/** The label of the track our call sends of `kind`, and the self-view's. */
const sentTrackLabel = (page, kind) =>
  page.evaluate((k) => {
    const sender = window.switchboard.pc.getSenders().find((s) => s.track && s.track.kind === k);
    return sender ? sender.track.label : null;
  }, kind);

test('the settings panel lists the cameras, microphones and speakers, and the choice survives a reload', async () => {
  const page = await openAs(fixture.browser, fixture.server, 'alice');
  await openSettings(page);
  assert.deepEqual(await optionLabels(page, 'camera-select'), ['System default', 'fake_device_0', 'fake_device_1']);
  assert.ok((await optionLabels(page, 'mic-select')).includes('Fake Audio Input 1'));
  assert.ok(await page.getByTestId('speaker-select').isVisible(), 'Chromium can choose the speaker');
  assert.ok((await optionLabels(page, 'speaker-select')).includes('Fake Audio Output 1'));
  // A live preview of the chosen camera.
  await page.waitForFunction(() => {
    const video = document.querySelector('[data-testid="device-preview"]');
    return !video.hidden && video.videoWidth > 0;
  });

  await page.getByTestId('camera-select').selectOption({ label: 'fake_device_1' });
  await page.getByTestId('mic-select').selectOption({ label: 'Fake Audio Input 2' });
  await page.getByTestId('speaker-select').selectOption({ label: 'Fake Audio Output 1' });
  await page.waitForFunction(() => {
    const video = document.querySelector('[data-testid="device-preview"]');
    return video.srcObject && video.srcObject.getVideoTracks()[0]?.label === 'fake_device_1';
  });
  await screenshot(page, 'devices-settings');
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, 'devices-settings-phone');
  await page.getByTestId('device-panel-close').click();
  await page.getByTestId('device-panel').waitFor({ state: 'hidden' });
  // Closing the panel releases the camera.
  assert.equal(await page.evaluate(() => document.querySelector('[data-testid="device-preview"]').srcObject), null);

  await page.reload();
  await page.getByTestId('open-settings').waitFor({ state: 'visible', timeout: 10000 });
  await openSettings(page);
  assert.equal(await selectedLabel(page, 'camera-select'), 'fake_device_1');
  assert.equal(await selectedLabel(page, 'mic-select'), 'Fake Audio Input 2');
  assert.equal(await selectedLabel(page, 'speaker-select'), 'Fake Audio Output 1');
  await closePages(page);
});

test('a chosen camera and microphone are what the call uses, and start-call is still one click', async () => {
  const pageA = await openAs(fixture.browser, fixture.server, 'carol');
  const pageB = await openAs(fixture.browser, fixture.server, 'dave');
  await openSettings(pageA);
  await pageA.getByTestId('camera-select').selectOption({ label: 'fake_device_1' });
  await pageA.getByTestId('mic-select').selectOption({ label: 'Fake Audio Input 2' });
  await pageA.getByTestId('device-panel-close').click();
  await openChat(pageA, fixture.chatOf.oneClick);
  await openChat(pageB, fixture.chatOf.oneClick);

  await pageA.getByTestId('start-call').click(); // the only click the caller makes
  await pageB.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(pageA, 'connected');
  await waitForStatus(pageB, 'connected');
  assert.equal(await sentTrackLabel(pageA, 'video'), 'fake_device_1');
  assert.equal(await sentTrackLabel(pageA, 'audio'), 'Fake Audio Input 2');
  await expectRemoteVideoPlaying(pageB);
  await closePages(pageA, pageB);
});

test('switching camera and microphone during a call: no renegotiation, still connected, the peer still decodes frames', async () => {
  const pageA = await openAs(fixture.browser, fixture.server, 'erin');
  const pageB = await openAs(fixture.browser, fixture.server, 'frank');
  await openChat(pageA, fixture.chatOf.switching);
  await openChat(pageB, fixture.chatOf.switching);
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(pageA, 'connected');
  await waitForStatus(pageB, 'connected');
  await expectRemoteVideoPlaying(pageB);
  assert.equal(await sentTrackLabel(pageA, 'video'), 'fake_device_0');

  const offers = (page) => page.consoleLines.filter((line) => line === '[CallJS] Sending webrtc.offer...').length;
  const offersBefore = [offers(pageA), offers(pageB)];

  await pageA.getByTestId('call-devices').click();
  await pageA.getByTestId('device-panel').waitFor({ state: 'visible', timeout: 5000 });
  await pageA.waitForFunction(() => document.querySelector('[data-testid="camera-select"]').options.length >= 3);
  await pageA.getByTestId('camera-select').selectOption({ label: 'fake_device_1' });
  await pageA.waitForFunction(() => {
    const sender = window.switchboard.pc.getSenders().find((s) => s.track && s.track.kind === 'video');
    const self = document.querySelector('[data-testid="local-video"]').srcObject;
    return sender && sender.track.label === 'fake_device_1' && self.getVideoTracks()[0]?.label === 'fake_device_1';
  }, null, { timeout: 10000 });
  await pageA.getByTestId('mic-select').selectOption({ label: 'Fake Audio Input 1' });
  await pageA.waitForFunction(() => {
    const sender = window.switchboard.pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
    return sender && sender.track.label === 'Fake Audio Input 1';
  }, null, { timeout: 10000 });
  await screenshot(pageA, 'devices-in-call');
  await pageA.getByTestId('device-panel-close').click();

  await expectRemoteVideoPlaying(pageB);
  assert.equal(await pageA.getByTestId('call-status').textContent(), 'connected');
  assert.equal(await pageB.getByTestId('call-status').textContent(), 'connected');
  assert.deepEqual([offers(pageA), offers(pageB)], offersBefore, 'a device switch needs no new offer');
  // Only one camera is open: the old one was released.
  const liveCameras = await pageA.evaluate(
    () => document.querySelector('[data-testid="local-video"]').srcObject.getVideoTracks().filter((t) => t.readyState === 'live').length,
  );
  assert.equal(liveCameras, 1);
  await closePages(pageA, pageB);
});
