// device.js — this tab's device id (docs/CALLS.md "Devices").
//
// Every tab is a device: a random id kept in sessionStorage, so a reload of the tab keeps it (and
// the reloaded tab can find the call it was in) while a new tab gets its own. A tab the browser
// duplicates copies sessionStorage, so two live tabs would share one id; each tab therefore says
// `hello` on a BroadcastChannel, the older tab answers `taken`, and the younger one (the
// duplicate) takes a new id. `deviceReady` resolves once that check had its chance.

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const KEY = 'switchboard.device';
const CHANNEL = 'switchboard.devices';
const TWIN_CHECK_MS = 150;
// When this page started: the older of two twins keeps the id.
const born = performance.timeOrigin + performance.now();

function readStored() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: a fresh id per page
  }
}

function store(id) {
  try {
    sessionStorage.setItem(KEY, id);
  } catch {
    // kept in memory only
  }
}

let current = readStored();
if (!current) {
  current = newId();
  store(current);
}

/** This tab's device id (it may change once, in the first moments, if the tab is a duplicate). */
export function deviceId() {
  return current;
}

export const deviceReady = new Promise((resolve) => {
  if (typeof BroadcastChannel !== 'function') {
    resolve(current);
    return;
  }
  const channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = ({ data }) => {
    if (!data || data.device !== current) return;
    if (data.kind === 'hello' && data.born > born) {
      channel.postMessage({ kind: 'taken', device: current, born });
    } else if (data.kind === 'hello' && data.born < born) {
      // Their page is older: we are the duplicate.
      renew();
    } else if (data.kind === 'taken' && data.born < born) {
      renew();
    }
  };
  const renew = () => {
    const old = current;
    current = newId();
    store(current);
    console.log(`[CallJS] This tab is a duplicate of another (device ${old}); new device ${current}`);
  };
  channel.postMessage({ kind: 'hello', device: current, born });
  setTimeout(() => resolve(current), TWIN_CHECK_MS);
});
