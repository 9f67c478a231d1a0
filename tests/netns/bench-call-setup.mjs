// bench-call-setup.mjs — how long a browser video call takes to set up across the namespaces of
// topology.mjs, through the embedded TURN relay (alice and bob cannot reach each other) versus
// direct (the server namespace forwards between them, so host candidates connect): from the
// click on Start Video Call to `connected` on both sides, with bob answering the moment it
// rings (a MutationObserver in the test's page clicks Accept). The two kinds of call alternate,
// after a warm-up round that is not counted. Prints every call, its selected candidate pairs and
// the median and max of each kind (logs go to test-artifacts/netns/); docs/BENCHMARKS.md quotes it.
//
//   bash tests/netns/run.sh --bench [--calls 10]     (as root; installs and builds first)
//   node tests/netns/bench-call-setup.mjs [--calls 10] [--warmup 1] [--kinds relayed,direct]
//                                         [--relay embedded|coturn] [--turn-listen 0.0.0.0:3478]

import { parseArgs } from 'node:util';
import { createTopology, SERVER_IP } from './topology.mjs';
import {
  startServer,
  launchBrowserIn,
  openAs,
  openChat,
  waitForStatus,
  settledPair,
  isRelayed,
  keepEvidence,
  startCoturn,
} from './harness.mjs';

const { values: args } = parseArgs({
  options: {
    calls: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' }, // calls of each kind first, not counted
    kinds: { type: 'string', default: 'relayed,direct' },
    relay: { type: 'string', default: 'embedded' }, // or `coturn`: Debian's, with use-auth-secret
    'turn-listen': { type: 'string', default: '0.0.0.0:3478' }, // the embedded server's address
  },
});
if (!['embedded', 'coturn'].includes(args.relay)) throw new Error('--relay takes embedded or coturn');
const CALLS = Number(args.calls);
if (!Number.isInteger(CALLS) || CALLS < 1 || CALLS > 100) throw new Error('--calls takes 1 to 100');
const WARMUP = Number(args.warmup);
if (!Number.isInteger(WARMUP) || WARMUP < 0 || WARMUP > 10) throw new Error('--warmup takes 0 to 10');
const KINDS = args.kinds.split(',').filter((k) => k === 'relayed' || k === 'direct');
if (KINDS.length === 0) throw new Error('--kinds takes relayed, direct or both');

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
const describe = (pair) => (pair ? `${pair.local}→${pair.remote}` : 'none');

const topology = await createTopology();
const COTURN_SECRET = 'netns-bench-shared-secret';
const coturn = args.relay === 'coturn' ? await startCoturn(topology, COTURN_SECRET, { label: 'bench-coturn', denyPrivatePeers: true }) : null;
const server = await startServer(topology, {
  label: 'bench-server',
  env: coturn
    ? {
        SWITCHBOARD_TURN_ENABLED: 'false',
        SWITCHBOARD_TURN_SECRET: COTURN_SECRET,
        SWITCHBOARD_TURN_URLS: `["turn:${SERVER_IP}:3478?transport=udp","turn:${SERVER_IP}:3478?transport=tcp"]`,
      }
    : { SWITCHBOARD_TURN_LISTEN: args['turn-listen'] },
});
const browsers = [];
const pages = [];
try {
  browsers.push(await launchBrowserIn(topology.alice, server));
  browsers.push(await launchBrowserIn(topology.bob, server));
  const caller = await openAs(browsers[0], server, 'alice');
  pages.push(caller);
  const callee = await openAs(browsers[1], server, 'bob', { initScripts: [autoAccept] });
  pages.push(callee);
  await openChat(caller, server.chatId);
  await openChat(callee, server.chatId);
  console.log(
    `server ${server.url} (HTTPS: ${Boolean(server.spki)}), relay: ${args.relay}, ` +
      `${CALLS} calls of each kind after ${WARMUP} warm-up, alternating`,
  );

  const setups = Object.fromEntries(KINDS.map((kind) => [kind, []]));
  // The first calls pay for one-time work (the fake camera starting, code paths warming up):
  // a warm-up round of each kind, printed but not counted, keeps that out of either figure.
  for (let i = 1 - WARMUP; i <= CALLS; i += 1) {
    for (const kind of KINDS) {
      await topology.setDirect(kind === 'direct');
      await caller.getByTestId('start-call').click();
      await waitForStatus(caller, 'connected', 30000);
      await waitForStatus(callee, 'connected', 30000);
      const a = await caller.evaluate(() => window.switchboard.call);
      const b = await callee.evaluate(() => window.switchboard.call);
      const pairA = await settledPair(caller, kind === 'relayed');
      const pairB = await settledPair(callee, kind === 'relayed');
      // A "direct" call that went through the relay (or the reverse) would measure the wrong thing.
      if (isRelayed(pairA) !== (kind === 'relayed') || isRelayed(pairB) !== (kind === 'relayed')) {
        throw new Error(`a ${kind} call selected ${describe(pairA)} / ${describe(pairB)}`);
      }
      // Both pages run on this machine, so their Date.now() clocks are the same clock.
      const total = Math.max(a.connectedAt, b.connectedAt) - a.clickedAt;
      const at = (call, status) => ((call.statusLog.find((s) => s.status === status) || {}).at ?? NaN) - a.clickedAt;
      if (i > 0) setups[kind].push(total);
      console.log(
        `${i > 0 ? `call ${String(i).padStart(2)}` : 'warm-up'} ${kind.padEnd(7)}: ${String(total).padStart(5)} ms to connected on both sides ` +
          `(accepted at ${at(a, 'connecting')} ms; alice ${describe(pairA)}, bob ${describe(pairB)})`,
      );
      await caller.getByTestId('hangup').click();
      await waitForStatus(caller, 'ended');
      await waitForStatus(callee, 'ended');
      await caller.getByTestId('call-close').click();
      await callee.getByTestId('call-close').click();
    }
  }
  console.log('\ncall setup, click → connected on both sides:');
  for (const [kind, values] of Object.entries(setups)) {
    console.log(`  ${kind.padEnd(7)} over ${values.length} calls: median ${median(values)} ms, max ${Math.max(...values)} ms`);
  }
} catch (err) {
  await keepEvidence('bench', pages);
  throw err;
} finally {
  for (const browser of browsers) await browser.close().catch(() => {});
  await server.stop();
  if (coturn) await coturn.stop();
  await topology.destroy();
}
