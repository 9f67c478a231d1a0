// media.test.mjs — what each side of a call sends, as the other side sees it: camera off (the
// avatar instead of black video, and no video sent at all), mute (a muted-microphone icon), the
// connection-quality indicator, and calls that go on audio-only when the camera is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  REPO_ROOT,
  pairsFixture,
  openAs,
  openChat,
  waitForStatus,
  reasonOf,
  framesDecoded,
  expectRemoteVideoPlaying,
  screenshot,
  consoleHas,
} from './harness.mjs';

const PAIRS = {
  state: ['alice', 'bob'],
  quality: ['carol', 'dave'],
  audioOnly: ['erin', 'frank'],
  noMedia: ['gina', 'hank'],
  silent: ['ivan', 'judy'],
};

const fixture = pairsFixture(PAIRS);
const { chatOf } = fixture;

async function openPair(key, options = {}) {
  const [a, b] = PAIRS[key];
  const pageA = await openAs(fixture.browser, fixture.server, a, options.a || {});
  const pageB = await openAs(fixture.browser, fixture.server, b, options.b || {});
  await openChat(pageA, chatOf[key]);
  await openChat(pageB, chatOf[key]);
  return [pageA, pageB];
}

async function closePages(...pages) {
  for (const page of pages) await page.context().close();
}

async function connect(pageA, pageB) {
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(pageA, 'connected');
  await waitForStatus(pageB, 'connected');
}

/** Audio RTP packets received so far on the page's call. */
function audioPackets(page) {
  return page.evaluate(async () => {
    let packets = 0;
    (await window.switchboard.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') packets += r.packetsReceived || 0;
    });
    return packets;
  });
}

/** Waits until `more` audio packets have arrived (50 ≈ 1 s of Opus at 20 ms a packet). */
async function waitForAudioPackets(page, more, timeout = 10000) {
  const start = await audioPackets(page);
  await page.waitForFunction(
    async ([from, wanted]) => {
      let packets = 0;
      (await window.switchboard.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') packets += r.packetsReceived || 0;
      });
      return packets >= from + wanted;
    },
    [start, more],
    { timeout, polling: 100 },
  );
}

const isHidden = (page, testId) =>
  page.evaluate((id) => {
    const node = document.querySelector(`[data-testid="${id}"]`);
    return !node || node.hidden || node.getClientRects().length === 0;
  }, testId);

const waitHidden = (page, testId, timeout = 10000) =>
  page.waitForFunction(
    (id) => {
      const node = document.querySelector(`[data-testid="${id}"]`);
      return node && (node.hidden || node.getClientRects().length === 0);
    },
    testId,
    { timeout, polling: 50 },
  );

test('camera off and mute on A: B shows the avatar and the muted icon, no video is sent; camera on: video plays again', async () => {
  const [pageA, pageB] = await openPair('state');
  await connect(pageA, pageB);
  await expectRemoteVideoPlaying(pageB);
  await waitHidden(pageB, 'remote-placeholder');
  assert.ok(await isHidden(pageB, 'remote-muted'), 'nobody is muted yet');

  await pageA.getByTestId('toggle-camera').click();
  await pageB.getByTestId('remote-placeholder').waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await pageB.getByTestId('remote-camera-off').textContent(), /Alice’s camera is off/);
  // Nothing is sent instead (no black frames): A's video sender has no track, and B decodes no
  // new frames while a second of A's audio arrives.
  const videoSenders = await pageA.evaluate(
    () => window.switchboard.pc.getSenders().filter((s) => s.track && s.track.kind === 'video').length,
  );
  assert.equal(videoSenders, 0);
  const framesBefore = await framesDecoded(pageB);
  await waitForAudioPackets(pageB, 50);
  assert.ok((await framesDecoded(pageB)) - framesBefore <= 2, 'B still decodes video while A’s camera is off');
  // A's own self-view says so too.
  await pageA.getByTestId('local-camera-off').waitFor({ state: 'visible', timeout: 5000 });
  assert.ok(await isHidden(pageA, 'local-video'));
  assert.equal(await pageA.getByTestId('toggle-camera').getAttribute('aria-pressed'), 'true');

  await pageA.getByTestId('toggle-mute').click();
  const muted = pageB.getByTestId('remote-muted');
  await muted.waitFor({ state: 'visible', timeout: 5000 });
  assert.equal(await muted.getAttribute('aria-label'), 'Alice is muted');
  const seen = await pageB.evaluate(() => window.switchboard.call.media.peer);
  assert.deepEqual(seen, { video: false, audio: false });
  await screenshot(pageB, 'media-peer-camera-off-muted');
  await screenshot(pageA, 'media-own-camera-off');

  await pageA.getByTestId('toggle-camera').click();
  await waitHidden(pageB, 'remote-placeholder');
  await expectRemoteVideoPlaying(pageB);
  await pageA.getByTestId('toggle-mute').click();
  await waitHidden(pageB, 'remote-muted');
  assert.equal(await pageB.getByTestId('call-status').textContent(), 'connected');
  assert.ok(consoleHas(pageA, '✓ Sent call.media via WebSocket'));
  await closePages(pageA, pageB);
});

/** In the page: a client that never sends `call.media` (as older clients do). */
function neverSendMediaState() {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data === 'string' && data.includes('"call.media"')) return undefined;
    return send.call(this, data);
  };
  const fetch = window.fetch;
  window.fetch = (input, init) =>
    init && typeof init.body === 'string' && init.body.includes('"call.media"')
      ? Promise.resolve(new Response('{"success": true, "recipients": 1, "online": 1}', { status: 200 }))
      : fetch(input, init);
}

test('a peer that never sends call.media: its stopped video still gives way to the avatar, and its return to the video', async () => {
  const [pageA, pageB] = await openPair('silent', { a: { initScripts: [neverSendMediaState] } });
  await connect(pageA, pageB);
  await expectRemoteVideoPlaying(pageB);
  await waitHidden(pageB, 'remote-placeholder');
  await pageA.getByTestId('toggle-camera').click();
  await pageB.getByTestId('remote-placeholder').waitFor({ state: 'visible', timeout: 10000 });
  assert.equal(await pageB.evaluate(() => window.switchboard.call.media.peer.video), false);
  await pageA.getByTestId('toggle-camera').click();
  await waitHidden(pageB, 'remote-placeholder');
  await expectRemoteVideoPlaying(pageB);
  assert.ok(!pageB.consoleLines.some((line) => line.startsWith('[CallJS] Peer media:')), 'no call.media reached B');
  await closePages(pageA, pageB);
});

test('quality: the thresholds class round trip and loss as documented', async () => {
  // quality.js has no imports: loaded as it is served, without a browser.
  const source = await readFile(path.join(REPO_ROOT, 'web/quality.js'), 'utf8');
  const { classifyQuality, qualityBetween } = await import(`data:text/javascript,${encodeURIComponent(source)}`);
  assert.equal(classifyQuality({ rttMs: 20, lossPct: 0 }), 'good');
  assert.equal(classifyQuality({ rttMs: 149, lossPct: 1.9 }), 'good');
  assert.equal(classifyQuality({ rttMs: 150, lossPct: 0 }), 'fair');
  assert.equal(classifyQuality({ rttMs: 20, lossPct: 5 }), 'fair');
  assert.equal(classifyQuality({ rttMs: 400, lossPct: 0 }), 'poor');
  assert.equal(classifyQuality({ rttMs: 20, lossPct: 8 }), 'poor');
  assert.equal(classifyQuality({ rttMs: null, lossPct: 0 }), 'good');
  // Loss counts over the interval only: 10 lost of 100 since the last sample is 10 %.
  const q = qualityBetween({ rttMs: 30, lost: 5, received: 1000 }, { rttMs: 30, lost: 15, received: 1090 });
  assert.deepEqual(q, { level: 'poor', rttMs: 30, lossPct: 10 });
  // Counters that went down (a new connection) start afresh.
  assert.equal(qualityBetween({ lost: 50, received: 5000 }, { rttMs: 10, lost: 0, received: 100 }).lossPct, 0);
});

test('the call window shows a connection-quality level from getStats, with its figures', async () => {
  const [pageA, pageB] = await openPair('quality');
  await connect(pageA, pageB);
  for (const page of [pageA, pageB]) {
    await page.waitForFunction(() => document.querySelector('[data-testid="call-quality"]').dataset.quality, null, {
      timeout: 10000,
    });
    const indicator = page.getByTestId('call-quality');
    assert.ok(await indicator.isVisible());
    const level = await indicator.getAttribute('data-quality');
    assert.equal(level, 'good', 'loopback has no loss and ~1 ms of round trip');
    assert.match(await indicator.textContent(), /Good connection/);
    assert.match(await indicator.getAttribute('title'), /Round trip \d+ ms, packet loss [\d.]+ %/);
    const quality = await page.evaluate(() => window.switchboard.call.quality);
    assert.equal(quality.level, level);
    assert.equal(typeof quality.rttMs, 'number');
    assert.ok(quality.rttMs < 150);
    assert.equal(typeof quality.lossPct, 'number');
  }
  await closePages(pageA, pageB);
});

/** In the page: a device with a microphone but no camera. */
function noCamera() {
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) =>
    constraints && constraints.video
      ? Promise.reject(new DOMException('Requested device not found', 'NotFoundError'))
      : getUserMedia(constraints);
}

test('audio-only: A has no camera, the call still connects, B shows the avatar and hears A', async () => {
  const [pageA, pageB] = await openPair('audioOnly', { a: { initScripts: [noCamera] } });
  const invites = [];
  pageA.on('request', (request) => {
    if (request.method() === 'POST' && /send-signal/.test(request.url())) {
      const body = request.postDataJSON();
      if (body && body.type === 'call.invite') invites.push(body.payload);
    }
  });
  await connect(pageA, pageB);
  assert.equal(invites.length > 0 && invites[0].video, false, 'the invite says the call is audio-only');

  // A: no self-view picture, and a camera button that says why it cannot be used.
  await pageA.getByTestId('local-camera-off').waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await pageA.getByTestId('local-camera-off').textContent(), /No camera/);
  const camera = pageA.getByTestId('toggle-camera');
  assert.ok(await camera.isDisabled());
  assert.match(await camera.getAttribute('title'), /No camera was found/);

  // B: A's avatar instead of video, and A's audio really arrives.
  await pageB.getByTestId('remote-placeholder').waitFor({ state: 'visible', timeout: 5000 });
  await waitForAudioPackets(pageB, 100);
  // B's camera still reaches A.
  await expectRemoteVideoPlaying(pageA);
  await screenshot(pageA, 'media-audio-only-caller');
  await screenshot(pageB, 'media-audio-only-callee');
  await closePages(pageA, pageB);
});

/** In the page: neither a camera nor a microphone. */
function noMedia() {
  navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
}

test('no camera and no microphone on the callee: both sides say the call failed for that', async () => {
  const [pageA, pageB] = await openPair('noMedia', { b: { initScripts: [noMedia] } });
  await pageA.getByTestId('start-call').click();
  await pageB.getByTestId('accept-call').click({ timeout: 15000 });
  await waitForStatus(pageB, 'failed');
  assert.match(await reasonOf(pageB), /No camera or microphone was found/);
  await waitForStatus(pageA, 'ended');
  assert.equal(await reasonOf(pageA), 'Hank’s camera and microphone are unavailable.');
  await closePages(pageA, pageB);
});
