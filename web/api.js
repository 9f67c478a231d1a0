// api.js — the one place that talks HTTP to the Switchboard server.
//
// Every request sends and expects JSON. Every POST carries the X-CSRFToken header (the server
// refuses state changes without it), taken from the readable `csrftoken` cookie. Failures become
// an ApiError with the HTTP status and the server's own `error` text, so the UI can show it.

export class ApiError extends Error {
  constructor(status, message, { retryAfterMs = null, code = null } = {}) {
    super(message);
    this.name = 'ApiError';
    // The server's machine-readable reason, when it gives one (a 409's `answered_elsewhere`).
    this.code = code;
    // 0 means the request never got an answer (network down, server gone, aborted).
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }

  /** Worth retrying the same request later: no answer, rate limited or a server-side failure. */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

// The token from the last login / `me` answer, used only if the cookie cannot be read.
let lastKnownCsrfToken = null;

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : lastKnownCsrfToken;
}

function retryAfterMs(response) {
  const header = response.headers.get('Retry-After');
  if (!header) return null;
  const seconds = Number(header);
  return Number.isFinite(seconds) ? Math.max(0, seconds * 1000) : null;
}

/**
 * Sends one request. `keepalive` lets a request outlive the page (hanging up on unload);
 * `signal` is an AbortSignal (long-polls are aborted when a better transport takes over).
 */
export async function request(method, path, body, { signal, keepalive = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') {
    const token = csrfToken();
    if (token) headers['X-CSRFToken'] = token;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
      keepalive,
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'Cannot reach the server. Check your connection.');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): the status alone tells what happened.
  }
  if (!response.ok || (data && data.success === false)) {
    const message = (data && data.error) || `${method} ${path} failed (HTTP ${response.status})`;
    throw new ApiError(response.status, message, {
      retryAfterMs: retryAfterMs(response),
      code: (data && data.code) || null,
    });
  }
  if (data && data.csrf_token) lastKnownCsrfToken = data.csrf_token;
  return data;
}

export const get = (path, options) => request('GET', path, undefined, options);
export const post = (path, body = {}, options) => request('POST', path, body, options);

// The endpoints the client uses, named after what they do.
export const api = {
  me: () => get('/api/auth/me'),
  login: (username, password) => post('/api/auth/login', { username, password }),
  register: (username, password, displayName) =>
    post('/api/auth/register', { username, password, display_name: displayName || undefined }),
  logout: () => post('/api/auth/logout'),

  chats: () => get('/api/chats/'),
  createChat: (usernames, title) => post('/api/chats/', { participants: usernames, title: title || undefined }),
  messages: (chatId) => get(`/api/chats/${chatId}/messages/?limit=200`),
  postMessage: (chatId, body) => post(`/api/chats/${chatId}/messages/`, { body }),
  markRead: (chatId, upto) => post(`/api/chats/${chatId}/read`, { upto }),
  activeCalls: () => get('/api/calls/active'),

  iceServers: () => get('/api/p2p/ice-servers/'),
  sendSignal: (signal, options) => post('/api/p2p/send-signal/', signal, options),
  ack: (seq) => post('/api/p2p/ack/', { seq }),
  /** `wait` (seconds) turns the poll into a long-poll; `after` is the cursor (and acknowledges). */
  signals: (chatId, after, { wait, signal } = {}) => {
    const query = new URLSearchParams({ after: String(after) });
    if (wait) query.set('wait', String(wait));
    return get(`/api/p2p/${chatId}/signals/?${query}`, { signal });
  },
};
