// transport.js — how signals, receipts and messages reach this tab.
//
// One transport at a time, best first: WebSocket → Server-Sent Events → long-poll → polling every
// 1.5 s. A transport that cannot connect (no `welcome` in time, handshake refused, blocked by a
// proxy) hands over to the next one; while on a fallback, the better ones are tried again every
// `climbIntervalMs`, and the first that connects takes over.
//
// Whatever the transport, signals are processed exactly once and in `seq` order, then
// acknowledged (acknowledging is what sends the caller its "delivered" receipt):
// - `base` is the one cursor that push transports resume from: every signal with seq <= base, in
//   every chat, has been processed (push delivers all chats in seq order).
// - The long-poll and polling fallbacks can only ask one chat at a time, and a cursor passed to
//   chat X also acknowledges X's signals up to it. Asking chat Y with a cursor raised by chat X
//   would acknowledge Y's unseen signals, so each chat also keeps its own cursor, never below
//   `base`. A signal at or below its chat's cursor has been processed before and is dropped.
// The long-poll and polling loops are the guide's startSignalPolling() in call.js; this module
// decides when they run (only when no push transport is up).

import { api } from './api.js';

export const ORDER = ['websocket', 'sse', 'longpoll', 'polling'];
const PUSH = new Set(['websocket', 'sse']);

const HEARTBEAT_MS = 20000; // the client's `ping`; the server drops a silent socket after 60 s
const PONG_TIMEOUT_MS = 10000;
const REQUEST_TIMEOUT_MS = 10000; // a WebSocket `send` frame with no `sent`/`error` answer
const MAX_RECONNECT_DELAY_MS = 15000;

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class SignalTransport {
  /**
   * @param {object} options
   * @param {object} options.config      timings and the allowed transports (config.js)
   * @param {() => number[]} options.chatIds  the user's chats, most important first (for polling)
   * @param {(source, {longPoll}) => Promise<object>} options.startPolling  the guide's
   *        startSignalPolling() (call.js): resolves to a running loop `{kind, close()}`
   * @param {(signal) => (void|Promise)} options.onSignal  processes one signal
   * @param {(receipt) => void} options.onReceipt
   * @param {(message) => void} options.onMessage
   * @param {(mode) => void} options.onChange  the transport in use changed (null: reconnecting)
   * @param {() => void} options.onResume  a push stream (re)connected: what it may have missed
   *        while down is not replayed for messages, so the app fetches them
   * @param {() => void} options.onUnauthorized  the session is gone
   */
  constructor(options) {
    this.options = options;
    this.config = options.config;
    this.allowed = ORDER.filter((kind) => this.config.transports.includes(kind));
    if (this.allowed.length === 0) this.allowed = ORDER.slice();

    this.mode = null;
    this.conn = null;
    this.base = 0;
    this.chatCursors = new Map();
    this.processing = Promise.resolve();
    this.history = []; // every transport taken, for the console and tests

    this.stopped = true;
    this.failures = 0;
    this.connecting = false;
    this.climbTimer = null;
    this.reconnectTimer = null;

    this.ackInFlight = false;
    this.ackPending = 0;
    // WebSocket acks wait for the end of the event-loop turn: a burst gets one ack.
    this.wsAckPending = 0;
    this.wsAckTimer = null;
  }

  start() {
    this.stopped = false;
    this.connectFrom(0);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.wsAckTimer);
    this.wsAckTimer = null;
    clearTimeout(this.climbTimer);
    clearTimeout(this.reconnectTimer);
    if (this.conn) this.conn.close();
    this.conn = null;
    this.setMode(null);
  }

  get isPush() {
    return PUSH.has(this.mode);
  }

  // ---- cursors and exactly-once processing -------------------------------------------------

  /** The chats to long-poll or poll, most important first. */
  chatIds() {
    return this.options.chatIds().map(Number);
  }

  /** The cursor for one chat's long-poll/poll: everything at or below it has been processed. */
  cursorFor(chatId) {
    return Math.max(this.base, this.chatCursors.get(Number(chatId)) || 0);
  }

  /** The highest seq processed so far (shown in the debugging info). */
  get cursor() {
    return Math.max(this.base, ...this.chatCursors.values());
  }

  /**
   * Takes one signal from any transport. A seq already processed is dropped; the rest are
   * processed one after another, each acknowledged once its processing has finished.
   * Returns whether the signal was new.
   */
  deliver(signal, via) {
    const chatId = Number(signal.chat_id);
    if (!(signal.seq > this.cursorFor(chatId))) return false;
    this.chatCursors.set(chatId, signal.seq);
    if (PUSH.has(via)) this.base = Math.max(this.base, signal.seq);
    this.processing = this.processing
      .then(() => this.options.onSignal(signal))
      .catch((err) => console.error(`[CallJS] Processing ${signal.type} failed:`, err))
      .then(() => this.acknowledge(signal.seq, via));
    return true;
  }

  /** Resolves once every signal delivered so far has been processed (the pollers wait on it). */
  drain() {
    return this.processing;
  }

  acknowledge(seq, via) {
    // Long-poll and polling acknowledge with their next request's cursor (per chat). A global
    // ack is only safe for what came by push, where everything below `seq` has been seen.
    if (!PUSH.has(via)) return;
    if (this.isWebSocketOpen()) {
      // One ack per event-loop turn, with the highest seq processed: the signals of a burst
      // arrive in back-to-back turns and are processed before the timer's turn comes.
      this.wsAckPending = Math.max(this.wsAckPending, seq);
      if (!this.wsAckTimer) this.wsAckTimer = setTimeout(() => this.flushWsAck(), 0);
      return;
    }
    this.ackPending = Math.max(this.ackPending, seq);
    this.flushHttpAck();
  }

  flushWsAck() {
    this.wsAckTimer = null;
    const seq = this.wsAckPending;
    this.wsAckPending = 0;
    if (!seq || this.stopped) return;
    if (this.isWebSocketOpen()) {
      this.conn.post({ op: 'ack', seq });
    } else {
      // The socket closed meanwhile: the ack goes by HTTP (the server also redelivers, and the
      // cursor drops what was processed, so nothing is processed twice either way).
      this.ackPending = Math.max(this.ackPending, seq);
      this.flushHttpAck();
    }
  }

  async flushHttpAck() {
    // One POST at a time, always with the highest seq processed: a burst of signals over SSE
    // costs one or two requests, not one each.
    if (this.ackInFlight || this.ackPending === 0) return;
    const seq = this.ackPending;
    this.ackPending = 0;
    this.ackInFlight = true;
    try {
      await api.ack(seq);
    } catch (err) {
      console.warn(`[CallJS] Ack of seq ${seq} failed: ${err.message}`);
      if (err.retryable) this.ackPending = Math.max(this.ackPending, seq);
      await delay(err.retryable ? 1000 : 0);
    } finally {
      this.ackInFlight = false;
    }
    if (!this.stopped) this.flushHttpAck();
  }

  // ---- sending over the WebSocket ------------------------------------------------------------

  isWebSocketOpen() {
    return Boolean(this.conn && this.conn.kind === 'websocket' && this.conn.isOpen());
  }

  /** Sends a `send` frame; resolves with the `sent` frame, rejects on `error` or no answer. */
  sendFrame(frame) {
    if (!this.isWebSocketOpen()) return Promise.reject(new Error('WS not ready'));
    return this.conn.request(frame);
  }

  // ---- choosing, falling back and climbing back -----------------------------------------------

  async connectFrom(startIndex) {
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    clearTimeout(this.reconnectTimer);
    try {
      for (const kind of this.allowed.slice(startIndex)) {
        try {
          const conn = await this.open(kind);
          if (this.stopped) {
            conn.close();
            return;
          }
          this.failures = 0;
          this.use(conn);
          return;
        } catch (err) {
          console.warn(`[CallJS] ${kind} unavailable (${err.message || err}); falling back`);
          if (err && err.status === 401) {
            this.options.onUnauthorized();
            return;
          }
        }
      }
      // Nothing connected, not even polling: the server is unreachable. Try all again later.
      this.setMode(null);
      this.failures += 1;
      const wait = Math.min(MAX_RECONNECT_DELAY_MS, 1000 * 2 ** (this.failures - 1));
      console.warn(`[CallJS] No transport could connect; retrying in ${wait} ms`);
      this.reconnectTimer = setTimeout(() => this.connectFrom(0), wait);
    } finally {
      this.connecting = false;
    }
  }

  open(kind) {
    switch (kind) {
      case 'websocket':
        return this.openWebSocket();
      case 'sse':
        return this.openEventSource();
      case 'longpoll':
        return this.options.startPolling(this, { longPoll: true });
      default:
        return this.options.startPolling(this, { longPoll: false });
    }
  }

  use(conn) {
    const old = this.conn;
    this.conn = conn;
    if (old && old !== conn) old.close();
    this.setMode(conn.kind);
    this.scheduleClimb();
  }

  setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    if (mode) {
      this.history.push(mode);
      console.log(`[CallJS] Transport: ${mode}`);
    }
    this.options.onChange(mode);
    if (PUSH.has(mode)) this.options.onResume();
  }

  /** A transport in use stopped working: try it again, then the ones after it. */
  dropped(conn, reason) {
    if (conn !== this.conn || this.stopped) return; // a replaced or probing connection
    console.warn(`[CallJS] ${conn.kind} lost (${reason}); reconnecting`);
    this.conn = null;
    this.setMode(null);
    const index = Math.max(0, this.allowed.indexOf(conn.kind));
    this.failures += 1;
    // The first retry is immediate (a server restart, a blip); repeated drops back off.
    const wait = this.failures <= 1 ? 0 : Math.min(MAX_RECONNECT_DELAY_MS, 500 * 2 ** this.failures);
    this.reconnectTimer = setTimeout(() => this.connectFrom(index), wait);
  }

  scheduleClimb() {
    clearTimeout(this.climbTimer);
    const index = this.allowed.indexOf(this.mode);
    if (index <= 0 || this.stopped) return;
    this.climbTimer = setTimeout(() => this.climb(), this.config.climbIntervalMs);
  }

  async climb() {
    const index = this.allowed.indexOf(this.mode);
    if (this.stopped || this.connecting || index <= 0) return;
    for (const kind of this.allowed.slice(0, index)) {
      try {
        const conn = await this.open(kind);
        if (this.stopped || this.allowed.indexOf(this.mode) <= this.allowed.indexOf(kind)) {
          conn.close(); // something else took over meanwhile
          return;
        }
        console.log(`[CallJS] Climbing back to ${kind}`);
        this.use(conn);
        return;
      } catch {
        // Still blocked; stay on the fallback.
      }
    }
    this.scheduleClimb();
  }

  // ---- WebSocket ----------------------------------------------------------------------------

  openWebSocket() {
    return new Promise((resolve, reject) => {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const url = `${scheme}://${location.host}/ws/p2p/?last_seq=${this.base}`;
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (err) {
        reject(new Error(`WebSocket unavailable: ${err.message || err}`));
        return;
      }
      let welcomed = false;
      let nextRef = 1;
      const pending = new Map();
      let heartbeat = null;
      let pongTimer = null;

      const conn = {
        kind: 'websocket',
        isOpen: () => ws.readyState === WebSocket.OPEN,
        post: (frame) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(frame)),
        request: (frame) =>
          new Promise((res, rej) => {
            const ref = nextRef++;
            const timer = setTimeout(() => {
              pending.delete(ref);
              rej(new Error('no answer on the WebSocket'));
            }, REQUEST_TIMEOUT_MS);
            pending.set(ref, { res, rej, timer });
            ws.send(JSON.stringify({ ...frame, ref }));
          }),
        close: () => {
          cleanup();
          ws.onclose = null;
          ws.close(1000);
        },
      };

      const cleanup = () => {
        clearTimeout(connectTimer);
        clearInterval(heartbeat);
        clearTimeout(pongTimer);
        for (const { rej, timer } of pending.values()) {
          clearTimeout(timer);
          rej(new Error('WebSocket closed'));
        }
        pending.clear();
      };

      const connectTimer = setTimeout(() => {
        ws.onclose = null;
        ws.close();
        cleanup();
        reject(new Error('no welcome in time'));
      }, this.config.connectTimeoutMs);

      ws.onmessage = (event) => {
        clearTimeout(pongTimer); // any frame proves the socket is alive
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch {
          return;
        }
        switch (frame.op) {
          case 'welcome':
            if (!welcomed) {
              welcomed = true;
              clearTimeout(connectTimer);
              heartbeat = setInterval(() => {
                conn.post({ op: 'ping' });
                pongTimer = setTimeout(() => ws.close(4000, 'no pong'), PONG_TIMEOUT_MS);
              }, HEARTBEAT_MS);
              resolve(conn);
            }
            break;
          case 'signal':
            this.deliver(frame.signal, 'websocket');
            break;
          case 'receipt':
            this.options.onReceipt(frame.receipt);
            break;
          case 'message':
            this.options.onMessage(frame.message);
            break;
          case 'sent':
          case 'error': {
            const waiter = pending.get(frame.ref);
            if (!waiter) break;
            pending.delete(frame.ref);
            clearTimeout(waiter.timer);
            if (frame.op === 'sent') waiter.res(frame);
            else {
              const err = new Error(frame.error);
              err.status = frame.status;
              err.code = frame.code || null;
              err.retryAfterMs = frame.retry_after_ms;
              waiter.rej(err);
            }
            break;
          }
          default:
            break; // pong, and ops of later protocol versions
        }
      };

      ws.onerror = () => {}; // onclose follows with the code
      ws.onclose = (event) => {
        cleanup();
        if (!welcomed) reject(new Error(`handshake failed (close ${event.code})`));
        else this.dropped(conn, `close ${event.code}`);
      };
    });
  }

  // ---- Server-Sent Events --------------------------------------------------------------------

  openEventSource() {
    return new Promise((resolve, reject) => {
      if (typeof EventSource !== 'function') {
        reject(new Error('EventSource unavailable'));
        return;
      }
      const es = new EventSource(`/api/p2p/events/?last_seq=${this.base}`);
      let welcomed = false;
      let stallTimer = null;
      const conn = {
        kind: 'sse',
        close: () => {
          clearTimeout(connectTimer);
          clearTimeout(stallTimer);
          es.close();
        },
      };
      const connectTimer = setTimeout(() => {
        es.close();
        reject(new Error('no welcome in time'));
      }, this.config.connectTimeoutMs);

      const parse = (event) => {
        try {
          return JSON.parse(event.data);
        } catch {
          return null;
        }
      };
      es.addEventListener('welcome', () => {
        clearTimeout(stallTimer);
        if (welcomed) {
          // The browser reconnected by itself: signals resume from Last-Event-ID, messages
          // sent meanwhile are fetched.
          if (this.conn === conn) this.options.onResume();
          return;
        }
        welcomed = true;
        clearTimeout(connectTimer);
        resolve(conn);
      });
      es.addEventListener('signal', (event) => {
        const signal = parse(event);
        if (signal) this.deliver(signal, 'sse');
      });
      es.addEventListener('receipt', (event) => {
        const receipt = parse(event);
        if (receipt) this.options.onReceipt(receipt);
      });
      es.addEventListener('message', (event) => {
        const message = parse(event);
        if (message) this.options.onMessage(message);
      });
      es.onerror = () => {
        if (!welcomed) {
          clearTimeout(connectTimer);
          es.close();
          reject(new Error('event stream refused'));
          return;
        }
        if (es.readyState === EventSource.CLOSED) {
          this.dropped(conn, 'stream closed');
          return;
        }
        // The browser is reconnecting by itself; if that does not succeed soon, fall back.
        clearTimeout(stallTimer);
        stallTimer = setTimeout(() => {
          es.close();
          this.dropped(conn, 'stream did not come back');
        }, this.config.connectTimeoutMs * 2);
      };
    });
  }
}
