// harness.mjs — what every browser test needs: a real `switchboard` server of its own (fresh
// SQLite file, free loopback port, users and chats made with the CLI), Debian's Chromium driven by
// playwright-core, a signed-in page per user, and bounded waits on what the page shows.

import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

const run = promisify(execFile);

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SERVER_BIN = process.env.SWITCHBOARD_BIN || path.join(REPO_ROOT, 'target/debug/switchboard');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

export const LAUNCH_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--disable-gpu',
  // Chromium leaves loopback out of ICE unless told; with it (and the filter below) the two
  // browsers' media flows over 127.0.0.1 only.
  '--allow-loopback-in-peer-connection',
];

export const password = (username) => `${username}-secret-pw`;

/** Runs the CLI against the test database. */
async function cli(database, ...args) {
  const { stdout } = await run(SERVER_BIN, ['--database', database, ...args], {
    env: serverEnv(),
    timeout: 30000,
  });
  return stdout;
}

function serverEnv(extra = {}) {
  const env = { ...process.env };
  // A developer's own settings must not leak into the test server.
  for (const key of Object.keys(env)) if (key.startsWith('SWITCHBOARD_')) delete env[key];
  return {
    ...env,
    SWITCHBOARD_ICE_SERVERS: '[]', // no internet here: a public STUN server would only slow ICE
    SWITCHBOARD_OPEN_REGISTRATION: 'true',
    SWITCHBOARD_TURN_ENABLED: 'false', // loopback calls connect directly; tests/netns covers TURN
    RUST_LOG: env.RUST_LOG || 'warn',
    ...extra,
  };
}

/**
 * Starts a server with the given users (`[username, display name]`) and chats (lists of
 * usernames). Resolves to `{url, chatIds, stop()}`; the server's log is kept for failures.
 */
export async function startServer({ users, chats = [], env = {} }) {
  if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} is missing: run \`cargo build\` (run.sh does)`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-browser-'));
  const database = `sqlite://${dir}/switchboard.db`;
  for (const [username, displayName] of users) {
    await cli(database, 'user', 'create', username, '--password', password(username), '--display-name', displayName);
  }
  const chatIds = [];
  for (const members of chats) {
    const out = await cli(database, 'chat', 'create', ...members);
    const match = out.match(/Created chat (\d+)/);
    if (!match) throw new Error(`unexpected output of chat create: ${out}`);
    chatIds.push(Number(match[1]));
  }

  const child = spawn(SERVER_BIN, ['--database', database, 'serve', '--listen', '127.0.0.1:0'], {
    env: serverEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (chunk) => {
    log += chunk;
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s:\n${out}\n${log}`)), 20000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = out.match(/Switchboard is running on (http:\/\/127\.0\.0\.1:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${out}\n${log}`));
    });
  });

  return {
    url,
    chatIds,
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        process.kill(child.pid, 'SIGTERM');
        const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  await mkdir(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS });
}

/**
 * Keeps WebRTC on loopback even where the machine has other interfaces: remote candidates that
 * are not 127.x / ::1 are dropped before they reach the connection, so connectivity checks are
 * only ever sent to loopback addresses. (run.sh also runs the tests in a network namespace with
 * nothing but loopback where it can.) The client code itself is untouched.
 */
function keepMediaOnLoopback() {
  const loopback = (text) => {
    const parts = String(text || '').split(' ');
    const address = parts[4] || '';
    return address.startsWith('127.') || address === '::1' || address === '[::1]';
  };
  const proto = RTCPeerConnection.prototype;
  const addIceCandidate = proto.addIceCandidate;
  proto.addIceCandidate = function (candidate, ...rest) {
    const text = candidate && (candidate.candidate ?? candidate);
    if (typeof text === 'string' && text && !loopback(text)) {
      return Promise.resolve();
    }
    return addIceCandidate.call(this, candidate, ...rest);
  };
  const setRemoteDescription = proto.setRemoteDescription;
  proto.setRemoteDescription = function (description, ...rest) {
    if (description && description.sdp) {
      const sdp = description.sdp
        .split('\r\n')
        .filter((line) => !line.startsWith('a=candidate:') || loopback(line.slice('a='.length)))
        .join('\r\n');
      description = { type: description.type, sdp };
    }
    return setRemoteDescription.call(this, description, ...rest);
  };
}

/**
 * A new isolated browser context signed in as `username`, with the page's console collected.
 * `query` is added to the URL (e.g. `?ringTimeoutMs=3000`); `blockWebSocket` fails every
 * WebSocket to the server and `blockEventSource` the SSE stream, as a strict proxy would;
 * `setup(context)` may install routes of its own before the page opens.
 */
export async function openAs(
  browser,
  server,
  username,
  { query = '', blockWebSocket = false, blockEventSource = false, viewport, initScripts = [], setup } = {},
) {
  const context = await browser.newContext({ viewport: viewport || { width: 1100, height: 720 } });
  await context.grantPermissions(['camera', 'microphone'], { origin: server.url });
  await context.addInitScript(keepMediaOnLoopback);
  for (const script of initScripts) await context.addInitScript(script);
  if (setup) await setup(context); // e.g. a WebSocket proxy of the test's own
  if (blockWebSocket) {
    await context.routeWebSocket(/\/ws\//, (ws) => ws.close({ code: 1008, reason: 'blocked by the test' }));
  }
  if (blockEventSource) {
    await context.route(/\/api\/p2p\/events\//, (route) => route.abort('blockedbyclient'));
  }
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (message) => consoleLines.push(message.text()));
  page.on('pageerror', (err) => consoleLines.push(`PAGE ERROR: ${err.message}`));
  page.consoleLines = consoleLines;

  await page.goto(`${server.url}/${query}`);
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password(username));
  await page.getByTestId('login-submit').click();
  // Signed in: the chat list has been drawn (possibly empty).
  await page.waitForFunction(
    () => document.querySelector('[data-testid="chat-item"]') || !document.querySelector('#chat-list-empty').hidden,
    null,
    { timeout: 10000 },
  );
  return page;
}

/**
 * Another tab of the same person: a new page in `page`'s browser context (same cookies, so
 * already signed in; its own sessionStorage, so its own device id). `setup(tab)` may install
 * page-level routes before it loads.
 */
export async function openTab(page, { query = '', setup } = {}) {
  const tab = await page.context().newPage();
  const consoleLines = [];
  tab.on('console', (message) => consoleLines.push(message.text()));
  tab.on('pageerror', (err) => consoleLines.push(`PAGE ERROR: ${err.message}`));
  tab.consoleLines = consoleLines;
  if (setup) await setup(tab);
  const url = new URL(page.url());
  await tab.goto(`${url.origin}/${query}`);
  await tab.waitForFunction(
    () => document.querySelector('[data-testid="chat-item"]') || !document.querySelector('#chat-list-empty').hidden,
    null,
    { timeout: 10000 },
  );
  return tab;
}

export async function openChat(page, chatId) {
  await page.locator(`[data-testid="chat-item"][data-chat-id="${chatId}"]`).click();
  await page.getByTestId('message-input').waitFor({ timeout: 5000 });
}

/** Waits until the push/poll transport is up, and returns it. */
export async function transportOf(page, timeout = 15000) {
  try {
    const handle = await page.waitForFunction(() => window.switchboard && window.switchboard.transport, null, { timeout });
    return await handle.jsonValue();
  } catch (err) {
    throw new Error(`waiting for a transport: ${err.message}\nconsole:\n${page.consoleLines.slice(-40).join('\n')}`);
  }
}

/** Waits until the call window shows exactly `status`. */
export async function waitForStatus(page, status, timeout = 15000) {
  try {
    await page.waitForFunction(
      (wanted) => {
        const modal = document.querySelector('#call-modal');
        const node = document.querySelector('[data-testid="call-status"]');
        return modal && !modal.hidden && node && node.textContent === wanted;
      },
      status,
      { timeout, polling: 50 },
    );
  } catch (err) {
    const seen = await page.evaluate(() => ({
      status: document.querySelector('[data-testid="call-status"]')?.textContent,
      reason: document.querySelector('[data-testid="call-reason"]')?.textContent,
      hidden: document.querySelector('#call-modal')?.hidden,
    }));
    throw new Error(`waiting for call status "${status}": ${err.message}\nshown: ${JSON.stringify(seen)}\nconsole:\n${page.consoleLines.slice(-40).join('\n')}`);
  }
}

export const reasonOf = (page) => page.getByTestId('call-reason').textContent();

/** Video frames decoded so far on the page's inbound video (from RTCPeerConnection.getStats). */
export function framesDecoded(page) {
  return page.evaluate(async () => {
    const pc = window.switchboard.pc;
    if (!pc) return 0;
    let frames = 0;
    (await pc.getStats()).forEach((report) => {
      if (report.type === 'inbound-rtp' && report.kind === 'video') frames += report.framesDecoded || 0;
    });
    return frames;
  });
}

/**
 * Asserts that the remote video really plays: decoded frames keep rising and the <video>
 * element's clock advances with a picture of non-zero size.
 */
export async function expectRemoteVideoPlaying(page, timeout = 15000) {
  await page.waitForFunction(
    async () => {
      const pc = window.switchboard.pc;
      if (!pc) return false;
      let frames = 0;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
      });
      return frames > 0;
    },
    null,
    { timeout, polling: 100 },
  );
  const before = await framesDecoded(page);
  const videoTime = await page.evaluate(() => document.querySelector('[data-testid="remote-video"]').currentTime);
  await page.waitForFunction(
    async ([frames, time]) => {
      const video = document.querySelector('[data-testid="remote-video"]');
      let decoded = 0;
      (await window.switchboard.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') decoded += r.framesDecoded || 0;
      });
      return decoded >= frames + 10 && video.videoWidth > 0 && video.currentTime > time && !video.paused;
    },
    [before, videoTime],
    { timeout, polling: 100 },
  );
}

export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), animations: 'disabled' });
}

export function consoleHas(page, line) {
  return page.consoleLines.some((text) => text === line || text.startsWith(line));
}

/**
 * A test file's fixture: one server with the users of every pair and a chat per pair, and one
 * browser, started before the file's tests and stopped after them. `chatOf[key]` is the chat of
 * `pairs[key]`; `server` and `browser` are set once the `before` hook has run.
 */
export function pairsFixture(pairs) {
  const fixture = { server: null, browser: null, chatOf: {} };
  before(async () => {
    // A person may be in several pairs (a third party calling someone already in a call).
    const users = [...new Set(Object.values(pairs).flat())].map((u) => [u, u[0].toUpperCase() + u.slice(1)]);
    fixture.server = await startServer({ users, chats: Object.values(pairs) });
    Object.keys(pairs).forEach((key, i) => {
      fixture.chatOf[key] = fixture.server.chatIds[i];
    });
    fixture.browser = await launchBrowser();
  });
  after(async () => {
    if (fixture.browser) await fixture.browser.close();
    if (fixture.server) await fixture.server.stop();
  });
  /** Signs in the `index`-th person of `pairs[key]`, opens the pair's chat, waits for push. */
  fixture.open = async (key, index, options = {}) => {
    const page = await openAs(fixture.browser, fixture.server, pairs[key][index], options);
    await openChat(page, fixture.chatOf[key]);
    await transportOf(page);
    return page;
  };
  return fixture;
}
