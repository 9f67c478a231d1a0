// bench-call-setup.mjs — how long a browser video call takes to set up on loopback: from the
// click on Start Video Call to both sides `connected`, with the callee answering the moment the
// call rings (a MutationObserver in the test's page clicks Accept; no product hook). Prints every
// call and the median and max. Writes nothing; docs/BENCHMARKS.md quotes its output.
//
//   node tests/browser/bench-call-setup.mjs [--calls 10] [--transport websocket|sse|longpoll|polling]
//
// Needs what tests/browser/run.sh installs (Chromium, playwright-core, a built server). Where it
// can, it re-runs itself in a network namespace that has nothing but loopback, as run.sh does.

import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startServer, launchBrowser, openAs, openChat, transportOf, waitForStatus } from './harness.mjs';

const { values: args } = parseArgs({
  options: {
    calls: { type: 'string', default: '10' },
    transport: { type: 'string', default: 'websocket' },
  },
});
const CALLS = Number(args.calls);

const isolated = Object.values(os.networkInterfaces()).every((list) => list.every((a) => a.internal));
if (!isolated && !process.env.SWITCHBOARD_BENCH_NO_NETNS) {
  // As root a plain network namespace; otherwise one inside a user namespace of our own.
  const flags = [['--net'], ['--map-root-user', '--net']].find(
    (f) => spawnSync('unshare', [...f, 'true']).status === 0,
  );
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

// Answers every incoming call at once, as a person who had the button under their finger.
function autoAccept() {
  new MutationObserver(() => {
    const button = document.querySelector('[data-testid="accept-call"]');
    if (button && button.offsetParent !== null) button.click();
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['hidden'] });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

console.log(`network: ${isolated ? 'own namespace, loopback only' : 'host loopback (no namespace available)'}`);
const server = await startServer({ users: [['alice', 'Alice'], ['bob', 'Bob']], chats: [['alice', 'bob']] });
const browser = await launchBrowser();
try {
  const query = `?transports=${args.transport}`;
  const caller = await openAs(browser, server, 'alice', { query });
  const callee = await openAs(browser, server, 'bob', { query, initScripts: [autoAccept] });
  const chatId = server.chatIds[0];
  await openChat(caller, chatId);
  await openChat(callee, chatId);
  console.log(`transport: caller ${await transportOf(caller)}, callee ${await transportOf(callee)}`);

  const setups = [];
  for (let i = 1; i <= CALLS; i += 1) {
    await caller.getByTestId('start-call').click();
    await waitForStatus(caller, 'connected', 20000);
    await waitForStatus(callee, 'connected', 20000);
    const a = await caller.evaluate(() => window.switchboard.call);
    const b = await callee.evaluate(() => window.switchboard.call);
    const at = (log, status) => (log.statusLog.find((s) => s.status === status) || {}).at;
    // Both pages run on this machine, so their Date.now() clocks are the same clock.
    const total = Math.max(a.connectedAt, b.connectedAt) - a.clickedAt;
    const ringing = at(a, 'ringing') - a.clickedAt;
    const accepted = at(a, 'connecting') - a.clickedAt;
    setups.push(total);
    console.log(
      `call ${String(i).padStart(2)}: ${total} ms to connected on both sides ` +
        `(ringing at ${ringing} ms, accepted at ${accepted} ms)`,
    );

    await caller.getByTestId('hangup').click();
    await waitForStatus(caller, 'ended');
    await waitForStatus(callee, 'ended');
    await caller.getByTestId('call-close').click();
    await callee.getByTestId('call-close').click();
  }
  console.log(`\ncall setup over ${CALLS} calls (${args.transport}): median ${median(setups)} ms, max ${Math.max(...setups)} ms`);
} finally {
  await browser.close();
  await server.stop();
}
