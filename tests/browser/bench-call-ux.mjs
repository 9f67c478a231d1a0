// bench-call-ux.mjs — the figures of issue 11's call lifecycle, on loopback, over N rounds:
//   setup     click on Start Video Call → both sides `connected`
//   stop      the callee answers in one tab → their other tab stops ringing (`answered-elsewhere`)
//   rejoin    a reload mid-call (callee and caller in turn) → both sides `connected` again
// Prints every round and the median, p90 and max of each. Writes nothing; docs/BENCHMARKS.md
// quotes its output.
//
//   node tests/browser/bench-call-ux.mjs [--rounds 10]
//
// Needs what tests/browser/run.sh installs (Chromium, playwright-core, a built server). Where it
// can, it re-runs itself in a network namespace that has nothing but loopback, as run.sh does.

import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startServer, launchBrowser, openAs, openTab, openChat, transportOf, waitForStatus } from './harness.mjs';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '10' } } });
const ROUNDS = Number(args.rounds);

const isolated = Object.values(os.networkInterfaces()).every((list) => list.every((a) => a.internal));
if (!isolated && !process.env.SWITCHBOARD_BENCH_NO_NETNS) {
  const flags = [['--net'], ['--map-root-user', '--net']].find((f) => spawnSync('unshare', [...f, 'true']).status === 0);
  if (flags) {
    const self = fileURLToPath(import.meta.url);
    const inner = spawnSync(
      'unshare',
      [...flags, 'bash', '-c', 'ip link set lo up && exec "$@"', 'bash', process.execPath, self, ...process.argv.slice(2)],
      { stdio: 'inherit', env: { ...process.env, SWITCHBOARD_BENCH_NO_NETNS: '1' } },
    );
    process.exit(inner.status ?? 1);
  }
}

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
};
const summary = (label, values) =>
  `${label.padEnd(34)} median ${String(quantile(values, 0.5)).padStart(5)} ms   p90 ${String(quantile(values, 0.9)).padStart(5)} ms   max ${String(Math.max(...values)).padStart(5)} ms`;

const snapshot = (page) => page.evaluate(() => window.switchboard.call || window.switchboard.lastCall);
const lastAt = (call, status) => {
  const hits = call.statusLog.filter((s) => s.status === status);
  return hits.length ? hits[hits.length - 1].at : null;
};

/** Reloads `page` (accepting "Leave call?") and returns ms until both pages are connected again. */
async function reloadAndRejoin(page, other) {
  const onDialog = (dialog) => dialog.accept().catch(() => {});
  page.on('dialog', onDialog);
  const started = Date.now(); // the pages run on this machine: one clock
  await page.reload();
  page.off('dialog', onDialog);
  await waitForStatus(page, 'connected', 30000);
  await waitForStatus(other, 'connected', 30000);
  const a = await snapshot(page);
  const b = await snapshot(other);
  return Math.max(lastAt(a, 'connected'), lastAt(b, 'connected')) - started;
}

console.log(`network: ${isolated ? 'own namespace, loopback only' : 'host loopback (no namespace available)'}`);
const server = await startServer({ users: [['alice', 'Alice'], ['bob', 'Bob']], chats: [['alice', 'bob']] });
const browser = await launchBrowser();
try {
  const chatId = server.chatIds[0];
  const alice = await openAs(browser, server, 'alice');
  const bob = await openAs(browser, server, 'bob');
  const bob2 = await openTab(bob);
  await openChat(alice, chatId);
  await openChat(bob, chatId);
  for (const page of [alice, bob, bob2]) await transportOf(page);

  const setups = [];
  const stops = [];
  const rejoins = { callee: [], caller: [] };
  for (let round = 1; round <= ROUNDS; round += 1) {
    await alice.getByTestId('start-call').click();
    await bob.getByTestId('accept-call').waitFor({ timeout: 15000 });
    await bob2.getByTestId('accept-call').waitFor({ timeout: 15000 });
    const clicked = await bob.evaluate(() => {
      const at = Date.now();
      document.querySelector('[data-testid="accept-call"]').click();
      return at;
    });
    await waitForStatus(bob2, 'answered-elsewhere', 5000);
    const stopped = lastAt(await snapshot(bob2), 'answered-elsewhere');
    await waitForStatus(alice, 'connected', 20000);
    await waitForStatus(bob, 'connected', 20000);
    const a = await snapshot(alice);
    const b = await snapshot(bob);
    const setup = Math.max(a.connectedAt, b.connectedAt) - a.clickedAt;
    setups.push(setup);
    stops.push(stopped - clicked);
    await bob2.getByTestId('call-close').click();

    // Who reloads alternates with the rounds' parity inside one call: callee first, then caller.
    const calleeRejoin = await reloadAndRejoin(bob, alice);
    rejoins.callee.push(calleeRejoin);
    const callerRejoin = await reloadAndRejoin(alice, bob);
    rejoins.caller.push(callerRejoin);
    console.log(
      `round ${String(round).padStart(2)}: setup ${setup} ms, other tab stopped ringing after ${stopped - clicked} ms, ` +
        `rejoin after a reload: callee ${calleeRejoin} ms, caller ${callerRejoin} ms`,
    );

    await alice.getByTestId('hangup').click();
    await waitForStatus(bob, 'ended');
    for (const page of [alice, bob]) {
      await page.evaluate(() => window.switchboard.calls.dismiss());
    }
    await alice.locator('#call-modal').waitFor({ state: 'hidden', timeout: 5000 });
  }
  console.log(`\n${ROUNDS} rounds (WebSocket, loopback):`);
  console.log(summary('setup (click → both connected)', setups));
  console.log(summary('other tab stops ringing', stops));
  console.log(summary('rejoin after callee reload', rejoins.callee));
  console.log(summary('rejoin after caller reload', rejoins.caller));
} finally {
  await browser.close();
  await server.stop();
}
