// harness.mjs — what the cross-network tests need on top of topology.mjs: a real `switchboard`
// server inside the server namespace (HTTPS with its self-signed certificate, the embedded
// TURN server, a SQLite file of its own), one Debian Chromium inside each of alice's and bob's
// namespaces that trusts that certificate by its public key, a signed-in page per person, and
// bounded waits on what the call window shows and on the peer connection's getStats().

import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { SERVER_IP } from './topology.mjs';

const run = promisify(execFile);

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SERVER_BIN = process.env.SWITCHBOARD_BIN || path.join(REPO_ROOT, 'target/debug/switchboard');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts/netns');
export const PORT = 8443;

export const password = (username) => `${username}-secret-pw`;
export const USERS = [
  ['alice', 'Alice'],
  ['bob', 'Bob'],
];

function serverEnv(extra = {}) {
  const env = { ...process.env };
  // A developer's own settings must not leak into the test server.
  for (const key of Object.keys(env)) if (key.startsWith('SWITCHBOARD_')) delete env[key];
  return {
    ...env,
    SWITCHBOARD_OPEN_REGISTRATION: 'true',
    SWITCHBOARD_ICE_SERVERS: '[]', // no internet in the namespaces: only the node's own servers
    RUST_LOG: env.RUST_LOG || 'info',
    ...extra,
  };
}

async function cli(env, database, ...args) {
  const { stdout } = await run(SERVER_BIN, ['--database', database, ...args], { env, timeout: 30000 });
  return stdout;
}

/** Every PEM certificate file under `dir` (the server chooses the file names). */
async function findCertificate(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    const text = await readFile(file, 'utf8').catch(() => '');
    if (text.includes('-----BEGIN CERTIFICATE-----')) return file;
  }
  return null;
}

/**
 * base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, computed by openssl: what
 * Chromium's --ignore-certificate-errors-spki-list and curl's --pinnedpubkey take. Pinning the
 * key is how a person trusts a self-signed certificate they checked by its fingerprint.
 */
export async function spkiHash(certFile) {
  const { stdout } = await run(
    'bash',
    [
      '-c',
      'set -o pipefail; openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64',
      'spki',
      certFile,
    ],
    { timeout: 10000 },
  );
  return stdout.trim();
}

/** SHA-256 of the certificate (DER), upper-case hex with colons, as browsers show it. */
async function sha256Fingerprint(certFile) {
  const { stdout } = await run('openssl', ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256'], { timeout: 10000 });
  return stdout.trim().split('=').pop();
}

/**
 * Stops `child` (SIGTERM, then SIGKILL after 5 s), keeps its log in test-artifacts/netns/ under
 * `label`, and removes its working directory `dir`.
 */
function stopper(child, exited, log, label, dir) {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(path.join(ARTIFACTS, `${label}.log`), log());
    await rm(dir, { recursive: true, force: true });
  };
}

/**
 * Starts `switchboard serve --listen 10.231.1.1:8443` in the server namespace with a fresh
 * SQLite file holding alice, bob and their chat (made with the CLI), TLS with a self-signed
 * certificate for 10.231.1.1 and the embedded TURN server on 0.0.0.0:3478, plus `env`.
 * Resolves once /healthz answers over HTTPS from alice's namespace, to
 * `{ url, chatId, spki, log(), stop() }`.
 */
export async function startServer(topology, { env = {}, label = 'server' } = {}) {
  if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} is missing: run \`cargo build\` (run.sh does)`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-netns-'));
  const database = `sqlite://${dir}/switchboard.db`;
  const tlsDir = path.join(dir, 'tls');
  const fullEnv = serverEnv({
    SWITCHBOARD_TLS_SELF_SIGNED: 'true',
    SWITCHBOARD_TLS_HOSTNAMES: `["${SERVER_IP}"]`,
    SWITCHBOARD_TLS_SELF_SIGNED_DIR: tlsDir,
    SWITCHBOARD_TURN_LISTEN: '0.0.0.0:3478',
    SWITCHBOARD_TURN_PUBLIC_HOST: SERVER_IP,
    // Private peers stay refused (the default), although every address here is private: the
    // call must still connect relay to relay, the server's own relay addresses being exempt.
    ...env,
  });

  for (const [username, displayName] of USERS) {
    await cli(fullEnv, database, 'user', 'create', username, '--password', password(username), '--display-name', displayName);
  }
  const out = await cli(fullEnv, database, 'chat', 'create', 'alice', 'bob');
  const match = out.match(/Created chat (\d+)/);
  if (!match) throw new Error(`unexpected output of chat create: ${out}`);
  const chatId = Number(match[1]);

  const child = spawn(
    'ip',
    ['netns', 'exec', topology.server, SERVER_BIN, '--database', database, 'serve', '--listen', `${SERVER_IP}:${PORT}`],
    { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout.on('data', (chunk) => {
    log += chunk;
  });
  child.stderr.on('data', (chunk) => {
    log += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));

  const stop = stopper(child, exited, () => log, label, dir);

  try {
    // The process says it is listening…
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not start in 30 s:\n${log}`)), 30000);
      const check = () => {
        if (/Switchboard is running on/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on('data', check);
      check();
      exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the server exited with ${code} before listening:\n${log}`));
      });
    });
    const url = `https://${SERVER_IP}:${PORT}`;
    if (!log.includes(`Switchboard is running on ${url}`)) throw new Error(`the server does not say it serves ${url}:\n${log}`);
    const cert = await findCertificate(tlsDir);
    if (!cert) throw new Error(`no certificate in SWITCHBOARD_TLS_SELF_SIGNED_DIR (${tlsDir}); server log:\n${log}`);
    // The fingerprint printed at start is the one a person compares: it must be this file's.
    const printed = (log.match(/SHA-256 fingerprint: ([0-9A-F:]+)/) || [])[1];
    const actual = await sha256Fingerprint(cert);
    if (printed !== actual) throw new Error(`the server printed fingerprint ${printed}, its certificate's is ${actual}`);
    const spki = await spkiHash(cert);
    // …and /healthz answers, from alice's side of the network, over TLS pinned to that key.
    await waitHealthy(topology.alice, url, spki, () => log);
    return { url, chatId, spki, log: () => log, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Polls GET /healthz with curl from namespace `ns`: at most 40 tries, 2 s each at most. */
async function waitHealthy(ns, url, spki, log) {
  // --insecure skips the CA check only; the pinned key is still checked.
  const tls = ['--insecure', '--pinnedpubkey', `sha256//${spki}`];
  let last = '';
  for (let attempt = 0; attempt < 40; attempt += 1) {
    try {
      await run('ip', ['netns', 'exec', ns, 'curl', '-fsS', '--max-time', '2', ...tls, `${url}/healthz`], { timeout: 5000 });
      return;
    } catch (err) {
      last = err.stderr || err.message;
    }
    // Polling an address until it answers: the pause is the poll interval, bounded by the loop.
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${url}/healthz did not answer from ${ns}: ${last}\nserver log:\n${log()}`);
}

/**
 * Launches Debian's Chromium inside namespace `ns` (a wrapper script runs it under
 * `ip netns exec`; Playwright talks to it over pipes, which cross namespaces), trusting the
 * server's certificate by its SPKI hash only.
 */
export async function launchBrowserIn(ns, server) {
  await mkdir(ARTIFACTS, { recursive: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), `switchboard-chromium-${ns}-`));
  const wrapper = path.join(dir, 'chromium');
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec '${ns}' '${CHROMIUM}' "$@"\n`);
  await chmod(wrapper, 0o755);
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-gpu',
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    `--ignore-certificate-errors-spki-list=${server.spki}`,
  ];
  const browser = await chromium.launch({ executablePath: wrapper, headless: true, args });
  const close = browser.close.bind(browser);
  browser.close = async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  };
  return browser;
}

/** A new context signed in as `username` through the sign-in form, console lines collected. */
export async function openAs(browser, server, username, { query = '', initScripts = [] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  await context.grantPermissions(['camera', 'microphone'], { origin: server.url });
  for (const script of initScripts) await context.addInitScript(script);
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (message) => consoleLines.push(message.text()));
  page.on('pageerror', (err) => consoleLines.push(`PAGE ERROR: ${err.message}`));
  page.consoleLines = consoleLines;
  page.who = username;

  await page.goto(`${server.url}/${query}`);
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password(username));
  await page.getByTestId('login-submit').click();
  await page.waitForFunction(
    () => document.querySelector('[data-testid="chat-item"]') || !document.querySelector('#chat-list-empty').hidden,
    null,
    { timeout: 15000 },
  );
  return page;
}

export async function openChat(page, chatId) {
  await page.locator(`[data-testid="chat-item"][data-chat-id="${chatId}"]`).click();
  await page.getByTestId('message-input').waitFor({ timeout: 10000 });
  // The push transport is up, so the call invite is pushed the moment it is stored.
  await page.waitForFunction(() => window.switchboard && window.switchboard.transport, null, { timeout: 15000 });
}

async function shown(page) {
  return page.evaluate(() => ({
    status: document.querySelector('[data-testid="call-status"]')?.textContent,
    reason: document.querySelector('[data-testid="call-reason"]')?.textContent,
    hidden: document.querySelector('#call-modal')?.hidden,
  }));
}

/**
 * Waits until the call window shows exactly `status`. A call that ends another way (`ended`,
 * `failed`) cannot come back, so that fails at once instead of at the timeout.
 */
export async function waitForStatus(page, status, timeout = 20000) {
  let seen;
  try {
    const handle = await page.waitForFunction(
      (wanted) => {
        const modal = document.querySelector('#call-modal');
        const node = document.querySelector('[data-testid="call-status"]');
        if (!modal || modal.hidden || !node) return false;
        const now = node.textContent;
        return (now === wanted || now === 'ended' || now === 'failed') && now;
      },
      status,
      { timeout, polling: 50 },
    );
    seen = await handle.jsonValue();
  } catch (err) {
    seen = err.message;
  }
  if (seen !== status) {
    throw new Error(
      `${page.who}: waiting for call status "${status}": ${seen}\nshown: ${JSON.stringify(await shown(page))}\n` +
        `console:\n${page.consoleLines.slice(-40).join('\n')}`,
    );
  }
}

export const reasonOf = (page) => page.getByTestId('call-reason').textContent();

/**
 * The peer connection's selected candidate pair, from getStats(): the candidate types
 * (`host`, `srflx`, `prflx`, `relay`) and addresses of both ends. Null before one is selected.
 */
export function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = (window.__switchboardCall && window.__switchboardCall.pc) || (window.switchboard && window.switchboard.pc);
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    });
    if (!pair) {
      stats.forEach((r) => {
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
      });
    }
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId) || {};
    const remote = stats.get(pair.remoteCandidateId) || {};
    return {
      state: pair.state,
      local: local.candidateType,
      localAddress: `${local.address}:${local.port}`,
      relayProtocol: local.relayProtocol,
      remote: remote.candidateType,
      remoteAddress: `${remote.address}:${remote.port}`,
    };
  });
}

/** Every ICE candidate of the page's peer connection, `local relay 10.231.1.1:50000 udp`-style. */
export function candidates(page) {
  return page.evaluate(async () => {
    const pc = (window.__switchboardCall && window.__switchboardCall.pc) || (window.switchboard && window.switchboard.pc);
    if (!pc) return [];
    const out = [];
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'local-candidate' || r.type === 'remote-candidate') {
        out.push(`${r.type.split('-')[0]} ${r.candidateType} ${r.address}:${r.port} ${r.protocol}${r.relayProtocol ? ` via ${r.relayProtocol}` : ''}`);
      }
    });
    return out;
  });
}

export const isRelayed = (pair) => Boolean(pair && (pair.local === 'relay' || pair.remote === 'relay'));

/**
 * The selected pair once it is (or is not) relayed, as `relayed` says, polled for up to
 * `timeout` ms; the last pair seen otherwise. A connectivity check that arrives from the other
 * side's relay before its relay candidate was signalled makes a peer-reflexive (`prflx`)
 * candidate, which becomes `relay` when the candidate arrives: a first reading can be early.
 */
export async function settledPair(page, relayed, timeout = 10000) {
  let pair = await selectedPair(page);
  for (const deadline = Date.now() + timeout; isRelayed(pair) !== relayed && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 250)); // the poll interval
    pair = await selectedPair(page);
  }
  return pair;
}

/** Bytes received so far on the page's inbound RTP streams (audio and video). */
export function bytesReceived(page) {
  return page.evaluate(async () => {
    const pc = (window.__switchboardCall && window.__switchboardCall.pc) || (window.switchboard && window.switchboard.pc);
    if (!pc) return 0;
    let bytes = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp') bytes += r.bytesReceived || 0;
    });
    return bytes;
  });
}

/** The TURN usernames the peer connection was given: `"<expiry unix time>:<user id>"`. */
export function turnUsernames(page) {
  return page.evaluate(() => {
    const pc = (window.__switchboardCall && window.__switchboardCall.pc) || (window.switchboard && window.switchboard.pc);
    if (!pc) return [];
    return pc
      .getConfiguration()
      .iceServers.filter((s) => [].concat(s.urls).some((u) => /^turns?:/.test(u)))
      .map((s) => s.username);
  });
}

/** Waits until inbound bytes exceed `floor`; resolves to the new count. */
export async function waitBytesAbove(page, floor, timeout = 10000) {
  const handle = await page
    .waitForFunction(
      async (min) => {
        const pc = (window.__switchboardCall && window.__switchboardCall.pc) || (window.switchboard && window.switchboard.pc);
        if (!pc) return false;
        let bytes = 0;
        (await pc.getStats()).forEach((r) => {
          if (r.type === 'inbound-rtp') bytes += r.bytesReceived || 0;
        });
        return bytes > min ? bytes : false;
      },
      floor,
      { timeout, polling: 250 },
    )
    .catch(async (err) => {
      throw new Error(`${page.who}: inbound bytes stayed at ${await bytesReceived(page)} (≤ ${floor}): ${err.message}`);
    });
  return handle.jsonValue();
}

export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), animations: 'disabled' }).catch(() => {});
}

/** Writes both pages' screenshots and console logs, for a test that failed. */
export async function keepEvidence(label, pages) {
  await mkdir(ARTIFACTS, { recursive: true });
  for (const page of pages) {
    if (!page || page.isClosed()) continue;
    await screenshot(page, `${label}-${page.who}`);
    await writeFile(path.join(ARTIFACTS, `${label}-${page.who}.console.txt`), page.consoleLines.join('\n')).catch(() => {});
  }
}

/**
 * Starts Debian's coturn (`turnserver`) in the server namespace on 10.231.1.1:3478 with the
 * TURN REST scheme (`use-auth-secret`) and `secret`: the external relay an operator may run
 * instead of the embedded one, with coturn's defaults unless `denyPrivatePeers`. Resolves once it
 * says its listeners are up, to `{ log(), stop() }`.
 */
export async function startCoturn(topology, secret, { label = 'coturn', denyPrivatePeers = false } = {}) {
  // Like the embedded server's default: no private peers but this server's own relay address
  // (coturn's denied-peer-ip / allowed-peer-ip), so relays meet relays and nothing else.
  const policy = denyPrivatePeers ? ['--denied-peer-ip=10.0.0.0-10.255.255.255', `--allowed-peer-ip=${SERVER_IP}`] : [];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-coturn-'));
  const child = spawn(
    'ip',
    [
      // stdbuf: coturn writes its log with stdio, which a pipe would otherwise hold back.
      'netns', 'exec', topology.server, 'stdbuf', '-oL', 'turnserver', '-n',
      `--listening-ip=${SERVER_IP}`, '--listening-port=3478', `--relay-ip=${SERVER_IP}`,
      '--min-port=49152', '--max-port=49999',
      '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=switchboard', '--fingerprint',
      '--no-tls', '--no-dtls', '--no-cli', '--log-file=stdout', '--simple-log', '--verbose',
      `--pidfile=${dir}/turnserver.pid`, `--userdb=${dir}/turndb`,
      ...policy,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout.on('data', (chunk) => (log += chunk));
  child.stderr.on('data', (chunk) => (log += chunk));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = stopper(child, exited, () => log, label, dir);
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`coturn did not start in 20 s:\n${log}`)), 20000);
      const check = () => {
        if (/Total General servers/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on('data', check);
      exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`coturn exited with ${code}:\n${log}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { log: () => log, stop };
}

/**
 * Sends one STUN Binding request from namespace `ns` to `address:port` over UDP and resolves to
 * the address the answer came from (`ip:port`), or null without an answer in 2 s. A browser
 * drops TURN answers that come from another address than the one it asked.
 */
export async function stunAnswerFrom(ns, address, port = 3478) {
  const script = `
    const dgram = require('node:dgram');
    const crypto = require('node:crypto');
    const socket = dgram.createSocket('udp4');
    const request = Buffer.alloc(20);
    request.writeUInt16BE(0x0001, 0); // Binding request, no attributes
    request.writeUInt32BE(0x2112a442, 4); // magic cookie
    crypto.randomFillSync(request, 8, 12); // transaction id
    const timer = setTimeout(() => { console.log('none'); process.exit(0); }, 2000);
    socket.on('message', (message, from) => {
      if (message.length >= 20 && message.subarray(8, 20).equals(request.subarray(8, 20))) {
        clearTimeout(timer);
        console.log(from.address + ':' + from.port);
        process.exit(0);
      }
    });
    socket.send(request, ${Number(port)}, ${JSON.stringify(address)});
  `;
  const { stdout } = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { timeout: 10000 });
  const answer = stdout.trim();
  return answer === 'none' ? null : answer;
}
