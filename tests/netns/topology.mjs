// topology.mjs — three hosts in network namespaces of the test's own: the server, alice and bob.
// Alice and bob each share a link with the server (veth pairs) and route everything through it,
// but the server does not forward, so they reach the server and never each other — as two
// people behind strict NATs reach a public server and nothing of one another. `setDirect(true)`
// turns forwarding on, for the direct-call comparison of the call-setup benchmark.
//
//              10.231.1.0/24                      10.231.2.0/24
//   [alice] eth0 ----------- sa [ server ] sb ----------- eth0 [bob]
//   10.231.1.2          10.231.1.1   10.231.2.1          10.231.2.2
//   default via .1.1     ip_forward=0, FORWARD DROP      default via .2.1

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The address plan (the brief's), the same in every run: the namespaces are private. */
export const SERVER_IP = '10.231.1.1';
export const SERVER_IP_B = '10.231.2.1';
export const ALICE_IP = '10.231.1.2';
export const BOB_IP = '10.231.2.2';

async function ip(...args) {
  try {
    return (await run('ip', args, { timeout: 10000 })).stdout;
  } catch (err) {
    throw new Error(`ip ${args.join(' ')} failed: ${err.stderr || err.message}`);
  }
}

async function inNs(ns, command, ...args) {
  try {
    return (await run('ip', ['netns', 'exec', ns, command, ...args], { timeout: 10000 })).stdout;
  } catch (err) {
    throw new Error(`(in ${ns}) ${command} ${args.join(' ')} failed: ${err.stderr || err.message}`);
  }
}

/** Ends whatever still runs in the namespaces, then deletes them (their veths go with them). */
function destroySync(names) {
  for (const ns of names) {
    try {
      const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split(/\s+/)
        .filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    } catch {
      // no such namespace
    }
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already deleted
    }
  }
}

/**
 * Creates the three namespaces, named `<prefix>srv`, `<prefix>a`, `<prefix>b` (`prefix` defaults
 * to `SB_NETNS_PREFIX`, which run.sh sets so that its trap can clean up, else `sb<pid>`).
 * Resolves to `{ server, alice, bob, setDirect(on), destroy() }`; the namespaces are also
 * removed when the process exits, however it exits short of SIGKILL.
 */
export async function createTopology({ prefix = process.env.SB_NETNS_PREFIX || `sb${process.pid}` } = {}) {
  const names = { server: `${prefix}srv`, alice: `${prefix}a`, bob: `${prefix}b` };
  const all = Object.values(names);
  destroySync(all); // leftovers of a run that was killed
  const onExit = () => destroySync(all);
  process.once('exit', onExit);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      destroySync(all);
      process.exit(130);
    });
  }

  try {
    for (const ns of all) {
      await ip('netns', 'add', ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    // Each veth is born with its ends already in the two namespaces: nothing touches the host's.
    await ip('link', 'add', 'sa', 'netns', names.server, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', names.alice);
    await ip('link', 'add', 'sb', 'netns', names.server, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', names.bob);
    const link = async (ns, dev, cidr, gateway) => {
      await ip('-n', ns, 'addr', 'add', cidr, 'dev', dev);
      await ip('-n', ns, 'link', 'set', dev, 'up');
      if (gateway) await ip('-n', ns, 'route', 'add', 'default', 'via', gateway);
    };
    await link(names.server, 'sa', `${SERVER_IP}/24`);
    await link(names.server, 'sb', `${SERVER_IP_B}/24`);
    await link(names.alice, 'eth0', `${ALICE_IP}/24`, SERVER_IP);
    await link(names.bob, 'eth0', `${BOB_IP}/24`, SERVER_IP_B);
  } catch (err) {
    destroySync(all);
    throw err;
  }

  const topology = {
    ...names,
    /** Direct: the server routes between alice and bob. Isolated (the default): it does not. */
    async setDirect(on) {
      await inNs(names.server, 'sysctl', '-q', '-w', `net.ipv4.ip_forward=${on ? 1 : 0}`);
      // Belt and braces: even with forwarding switched on by someone else, nothing passes.
      await inNs(names.server, 'iptables', '-P', 'FORWARD', on ? 'ACCEPT' : 'DROP');
    },
    /** True when `from` gets an answer to one ping of `address` within a second. */
    async canPing(from, address) {
      try {
        await run('ip', ['netns', 'exec', from, 'ping', '-c', '1', '-W', '1', '-n', '-q', address], { timeout: 5000 });
        return true;
      } catch {
        return false;
      }
    },
    async destroy() {
      process.removeListener('exit', onExit);
      destroySync(all);
    },
  };
  await topology.setDirect(false);
  return topology;
}
