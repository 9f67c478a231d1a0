// config.js — the client's tunable timings, with defaults for people and overrides for tests.
//
// An override comes from the page's query string (`/?ringTimeoutMs=3000`) or from localStorage
// (`localStorage.setItem('switchboard.ringTimeoutMs', '3000')`); the query string wins. Nothing
// here can make the client do something a person did not ask for — they only change timings
// and which push transports may be tried.

const DEFAULTS = {
  // How long the caller lets it ring before giving up ("did not answer").
  ringTimeoutMs: 30000,
  // After an invite that reached nobody online (`online: 0`), how long to wait for a delivered
  // receipt (a polling client acknowledges a moment later) before saying "not reachable".
  unreachableGraceMs: 6000,
  // While on a fallback transport, how often to try the better ones again.
  climbIntervalMs: 30000,
  // How long a broken media connection may stay broken (after ICE restarts) before giving up.
  iceGiveUpMs: 20000,
  // How long a call that was connected waits for the other side to come back (a reload, a
  // network loss) before it ends with "connection lost" (docs/CALLS.md "Reload and rejoin").
  rejoinGraceMs: 30000,
  // How long a push transport may take to say `welcome` before the next one is tried.
  connectTimeoutMs: 5000,
  // How long the call window stays open, showing "ended", after a call this person ended
  // (hang up or decline) before it closes by itself. A call the other side ended, or that
  // failed, stays open with its reason until closed.
  endedCloseMs: 3000,
  // The push transports to try, best first (a test can leave some out).
  transports: 'websocket,sse,longpoll,polling',
};

function readOverride(key) {
  const fromQuery = new URLSearchParams(location.search).get(key);
  if (fromQuery !== null) return fromQuery;
  try {
    return localStorage.getItem(`switchboard.${key}`);
  } catch {
    return null; // storage disabled: defaults only
  }
}

function load() {
  const config = {};
  for (const [key, fallback] of Object.entries(DEFAULTS)) {
    const raw = readOverride(key);
    if (raw === null || raw === '') {
      config[key] = fallback;
    } else if (typeof fallback === 'number') {
      const value = Number(raw);
      config[key] = Number.isFinite(value) && value >= 0 ? value : fallback;
    } else {
      config[key] = raw;
    }
  }
  config.transports = config.transports.split(',').map((s) => s.trim()).filter(Boolean);
  return Object.freeze(config);
}

export const config = load();
