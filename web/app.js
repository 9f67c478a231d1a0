// app.js — the Switchboard page: sign-in, the chat list, a chat with live messages, and the call
// window. It wires the pieces together: api.js (HTTP), transport.js (push with fallbacks) and
// call.js (calls). Everything shown is built with textContent, never innerHTML, so a message or a
// name can never inject markup.

import { api, ApiError } from './api.js';
import { config } from './config.js';
import { SignalTransport } from './transport.js';
import { CallManager, isCallSignal, peerMedia, startSignalPolling } from './call.js';
import { applySpeaker } from './devices.js';
import { DevicePanel } from './device-panel.js';
import { Ringer, bindNotificationPrompt } from './ringer.js';
import { CallWindow } from './call-window.js';
import { deviceId, deviceReady } from './device.js';
import { describeCallEvent, previewOf } from './call-events.js';

const $ = (selector) => document.querySelector(selector);

const TRANSPORT_LABELS = {
  websocket: 'Live · WebSocket',
  sse: 'Live · event stream',
  longpoll: 'Live · long-poll',
  polling: 'Polling every 1.5 s',
};
const FALLBACK_REFRESH_MS = 3000; // messages are only pushed on WebSocket and SSE
const CHAT_LIST_REFRESH_MS = 15000;

const state = {
  me: null,
  chats: [],
  openChatId: null,
  messages: new Map(), // chat id → messages, oldest first (only for chats opened once)
  unread: new Map(), // chat id → messages from others after my read marker
  readUpTo: new Map(), // chat id → the last message id I told the server I read
  chatsLoadedAt: 0,
  transport: null,
  calls: null,
  refreshTimer: null,
};

// ---- small helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const displayName = (user) => user.display_name || user.username;

function initials(text) {
  const words = String(text).trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[1]] : [words[0] || '?'];
  return letters.map((w) => String.fromCodePoint(w.codePointAt(0))).join('').toUpperCase();
}

// A stable colour per name, so a person is recognisable at a glance.
function hue(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function paintAvatar(node, text) {
  node.textContent = initials(text);
  node.style.setProperty('--hue', hue(text));
}

function others(chat) {
  return chat.participants.filter((p) => p.id !== state.me.id);
}

function chatName(chat) {
  if (chat.title) return chat.title;
  const rest = others(chat);
  return rest.length ? rest.map(displayName).join(', ') : 'Just you';
}

const isDirect = (chat) => others(chat).length === 1;

function formatTime(iso) {
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString([], { month: 'short', day: 'numeric' }) +
        ' ' +
        date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function showError(node, message) {
  node.textContent = message || '';
  node.hidden = !message;
}

function toast(message, kind = 'info') {
  const node = el('div', { class: `toast ${kind}`, role: 'status', text: message });
  $('#toasts').append(node);
  setTimeout(() => node.classList.add('leaving'), 4500);
  setTimeout(() => node.remove(), 5000);
}

// ---- signing in ---------------------------------------------------------------------------------

function showAuth() {
  $('#boot').hidden = true;
  $('#main-view').hidden = true;
  $('#auth-view').hidden = false;
  selectAuthTab('login');
  $('[data-testid="login-username"]').focus();
}

function selectAuthTab(tab) {
  for (const button of document.querySelectorAll('.auth-tabs button')) {
    button.setAttribute('aria-selected', String(button.dataset.tab === tab));
  }
  $('#login-form').hidden = tab !== 'login';
  $('#register-form').hidden = tab !== 'register';
}

async function withBusy(button, work) {
  button.disabled = true;
  button.classList.add('busy');
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.classList.remove('busy');
  }
}

function bindAuth() {
  for (const button of document.querySelectorAll('.auth-tabs button')) {
    button.addEventListener('click', () => selectAuthTab(button.dataset.tab));
  }
  $('#login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const error = $('#login-error');
    showError(error, '');
    await withBusy($('[data-testid="login-submit"]'), async () => {
      try {
        const { user } = await api.login(form.username.value.trim(), form.password.value);
        form.reset();
        await enterApp(user);
      } catch (err) {
        showError(error, err.status === 401 ? 'Wrong username or password.' : err.message);
      }
    });
  });
  $('#register-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const error = $('#register-error');
    showError(error, '');
    await withBusy($('#register-submit'), async () => {
      try {
        const { user } = await api.register(
          form.username.value.trim(),
          form.password.value,
          form.display_name.value.trim(),
        );
        form.reset();
        await enterApp(user);
      } catch (err) {
        showError(error, err.status === 403 ? 'Registration is closed on this server. Ask an admin for an account.' : err.message);
      }
    });
  });
}

// ---- the signed-in app --------------------------------------------------------------------------

async function enterApp(user) {
  state.me = user;
  $('#boot').hidden = true;
  $('#auth-view').hidden = true;
  $('#main-view').hidden = false;
  $('#me-name').textContent = displayName(user);
  $('#me-username').textContent = `@${user.username}`;
  paintAvatar($('#me-avatar'), displayName(user));

  try {
    await loadChats();
  } catch (err) {
    toast(`Could not load your chats: ${err.message}`, 'error');
  }

  state.transport = new SignalTransport({
    config,
    chatIds: prioritizedChatIds,
    startPolling: startSignalPolling,
    onSignal: handleSignal,
    onReceipt: (receipt) => state.calls && state.calls.handleReceipt(receipt),
    onMessage: handleIncomingMessage,
    onChange: renderTransport,
    onResume: catchUp,
    onUnauthorized: sessionEnded,
  });
  state.calls = new CallManager({
    me: user,
    transport: state.transport,
    config,
    onUpdate: renderCall,
    onNotice: (message) => toast(message),
  });
  state.transport.start();
  clearInterval(state.refreshTimer);
  state.refreshTimer = setInterval(refreshWhileNotPushed, FALLBACK_REFRESH_MS);
  route();
  resumeCalls();
}

/**
 * After a reload: the server knows the calls this user is in (GET /api/calls/active). The call
 * this tab was in is rejoined, a call ringing for me rings again. Waits for the twin-tab check,
 * so a duplicated tab does not take over its original's call.
 */
async function resumeCalls() {
  const calls = state.calls;
  try {
    await deviceReady;
    const { calls: records } = await api.activeCalls();
    if (state.calls === calls && records && records.length) await calls.resume(records);
  } catch (err) {
    if (err.status !== 404) console.warn(`[CallJS] Could not read active calls: ${err.message}`);
  }
}

/** The chat list order also decides which chats hold a long-poll when on that fallback. */
function prioritizedChatIds() {
  const first = [];
  const call = state.calls && state.calls.call;
  if (call && !call.over) first.push(call.chatId);
  if (state.openChatId) first.push(state.openChatId);
  const rest = state.chats.map((c) => c.id);
  return [...new Set([...first, ...rest])];
}

function handleSignal(signal) {
  console.log(`[Polling] Processing signal: ${signal.type}`);
  if (!state.chats.some((c) => c.id === Number(signal.chat_id))) loadChats().catch(() => {});
  if (isCallSignal(signal.type)) return state.calls.handleSignal(signal);
  return undefined; // other signal types are for other features
}

async function sessionEnded() {
  try {
    await api.me();
  } catch (err) {
    if (err.status === 401) {
      leaveApp();
      toast('Your session ended. Please sign in again.', 'error');
      showAuth();
    }
  }
}

function leaveApp() {
  clearInterval(state.refreshTimer);
  if (state.calls) state.calls.destroy();
  if (state.transport) state.transport.stop();
  state.calls = null;
  state.transport = null;
  state.chats = [];
  state.messages.clear();
  state.unread.clear();
  state.readUpTo.clear();
  state.openChatId = null;
  renderCall(null);
  history.replaceState(null, '', location.pathname + location.search);
}

async function logout() {
  leaveApp();
  try {
    await api.logout();
  } catch {
    // Signed out locally either way.
  }
  showAuth();
}

function renderTransport(mode) {
  const node = $('#conn-status');
  node.dataset.transport = mode || 'offline';
  node.textContent = mode ? TRANSPORT_LABELS[mode] : 'Reconnecting…';
  $('#offline-banner').hidden = Boolean(mode);
}

/** On long-poll and polling nothing pushes messages: fetch the open chat instead. */
function refreshWhileNotPushed() {
  const transport = state.transport;
  if (!transport || transport.isPush || !transport.mode) return;
  if (state.openChatId) loadMessages(state.openChatId).catch(() => {});
  if (Date.now() - state.chatsLoadedAt > CHAT_LIST_REFRESH_MS) loadChats().catch(() => {});
}

/** A push stream is (back) up: fetch what was said while nothing was pushed. */
function catchUp() {
  if (state.openChatId && state.messages.has(state.openChatId)) loadMessages(state.openChatId).catch(() => {});
  if (Date.now() - state.chatsLoadedAt > 2000) loadChats().catch(() => {});
}

// ---- chats --------------------------------------------------------------------------------------

async function loadChats() {
  state.chatsLoadedAt = Date.now();
  const { chats } = await api.chats();
  state.chats = chats;
  for (const chat of chats) {
    // The server's count is the truth; an old server without it leaves ours.
    if (typeof chat.unread === 'number') state.unread.set(chat.id, chat.unread);
  }
  if (state.openChatId) markRead(state.openChatId);
  renderChatList();
  if (state.openChatId) renderChatHeader();
}

// ---- unread, the title and presence -------------------------------------------------------------

const unreadOf = (chatId) => state.unread.get(chatId) || 0;
const totalUnread = () => [...state.unread.values()].reduce((sum, n) => sum + n, 0);

/** "(3) Switchboard": the page title with the unread count (helper "ux" flashes on top of it). */
function baseTitle() {
  const total = totalUnread();
  return total > 0 ? `(${total}) Switchboard` : 'Switchboard';
}

function renderTitle() {
  // While a call rings the ringer flashes the title; it goes back to this base afterwards.
  if (ringer.state.titleFlashing) ringer.baseTitle = baseTitle();
  else document.title = baseTitle();
}

const chatIsSeen = (chatId) => chatId === state.openChatId && document.visibilityState === 'visible';

/** The open chat is being looked at: move the read marker to its newest message. */
function markRead(chatId) {
  if (!chatIsSeen(chatId)) return;
  const messages = state.messages.get(chatId);
  const newest = messages && messages.length ? messages[messages.length - 1].id : 0;
  const hadUnread = unreadOf(chatId) > 0;
  state.unread.set(chatId, 0);
  if (hadUnread) renderChatList();
  if (newest > (state.readUpTo.get(chatId) || 0)) {
    state.readUpTo.set(chatId, newest);
    api.markRead(chatId, newest).catch((err) => {
      if (err.status !== 404) console.warn(`Could not mark chat ${chatId} read: ${err.message}`);
    });
  }
}

/** The other person of a one-to-one chat, with `online` as the chat list last said. */
const peerOf = (chat) => (isDirect(chat) ? others(chat)[0] : null);

function presenceDot(user) {
  const known = user && typeof user.online === 'boolean';
  if (!known) return null;
  return el('span', {
    class: 'presence',
    'data-testid': 'presence',
    'data-online': String(user.online),
    role: 'img',
    'aria-label': user.online ? 'Online' : 'Offline',
    title: user.online ? 'Online' : 'Offline',
  });
}

function bindPresence() {
  // Presence and unread counts change without a message: fetched every 15 s while push is up
  // (on the fallbacks refreshWhileNotPushed does it), and when the person comes back.
  setInterval(() => {
    if (state.transport && state.transport.isPush && Date.now() - state.chatsLoadedAt >= CHAT_LIST_REFRESH_MS - 500) {
      loadChats().catch(() => {});
    }
  }, CHAT_LIST_REFRESH_MS);
  const comeBack = () => {
    if (!state.me || !state.transport) return;
    if (state.openChatId) markRead(state.openChatId);
    if (Date.now() - state.chatsLoadedAt > 2000) loadChats().catch(() => {});
  };
  window.addEventListener('focus', comeBack);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') comeBack();
  });
}

function renderChatList() {
  const list = $('#chat-list');
  list.replaceChildren(
    ...state.chats.map((chat) => {
      const label = chatName(chat);
      const avatar = el('span', { class: 'avatar', 'aria-hidden': 'true' });
      paintAvatar(avatar, label);
      const peer = peerOf(chat);
      const last = chat.last_message;
      const subtitle = last
        ? previewOf(last, state.me.id)
        : isDirect(chat)
          ? `@${others(chat)[0].username}`
          : `${chat.participants.length} people`;
      const unread = unreadOf(chat.id);
      return el(
        'li',
        {},
        el(
          'button',
          {
            class: `chat-item${chat.id === state.openChatId ? ' active' : ''}${unread > 0 ? ' unread' : ''}`,
            'data-testid': 'chat-item',
            'data-chat-id': chat.id,
            'aria-current': chat.id === state.openChatId ? 'true' : null,
            onclick: () => {
              location.hash = `#/chats/${chat.id}`;
            },
          },
          el('span', { class: 'avatar-wrap' }, avatar, presenceDot(peer)),
          el('span', { class: 'chat-item-text' }, el('strong', { text: label }), el('small', { text: subtitle })),
          el(
            'span',
            { class: 'chat-item-meta' },
            last ? el('time', { datetime: last.created_at, text: formatTime(last.created_at) }) : null,
            unread > 0
              ? el('span', {
                  class: 'unread-count',
                  'data-testid': 'unread-count',
                  'aria-label': `${unread} unread`,
                  text: unread > 99 ? '99+' : String(unread),
                })
              : null,
          ),
        ),
      );
    }),
  );
  $('#chat-list-empty').hidden = state.chats.length > 0;
  renderTitle();
}

function route() {
  const match = location.hash.match(/^#\/chats\/(\d+)/);
  openChat(match ? Number(match[1]) : null);
}

async function openChat(chatId) {
  const chat = state.chats.find((c) => c.id === chatId);
  state.openChatId = chat ? chat.id : null;
  $('#main-view').classList.toggle('chat-open', Boolean(chat));
  $('#chat-view').hidden = !chat;
  $('#no-chat').hidden = Boolean(chat);
  showError($('#send-error'), '');
  if (!chat) {
    renderChatList();
    return;
  }
  renderChatList();
  renderChatHeader();
  renderMessages();
  try {
    await loadMessages(chat.id);
    markRead(chat.id);
  } catch (err) {
    showError($('#send-error'), `Could not load messages: ${err.message}`);
  }
  if (window.matchMedia('(min-width: 720px)').matches) $('[data-testid="message-input"]').focus();
}

function renderChatHeader() {
  const chat = state.chats.find((c) => c.id === state.openChatId);
  if (!chat) return;
  const label = chatName(chat);
  $('#chat-name').textContent = label;
  const peer = peerOf(chat);
  const presence = peer && typeof peer.online === 'boolean' ? (peer.online ? ' · Online' : ' · Offline') : '';
  $('#chat-sub').textContent = isDirect(chat)
    ? `@${others(chat)[0].username}${presence}`
    : chat.participants.map(displayName).join(', ');
  $('#chat-presence').replaceChildren(...[presenceDot(peer)].filter(Boolean));
  paintAvatar($('#chat-avatar'), label);
  const start = $('[data-testid="start-call"]');
  start.disabled = !isDirect(chat);
  start.title = isDirect(chat) ? `Video call ${label}` : 'Video calls work in one-to-one chats';
}

// ---- messages -----------------------------------------------------------------------------------

async function loadMessages(chatId) {
  const { messages } = await api.messages(chatId);
  mergeMessages(chatId, messages);
}

function mergeMessages(chatId, incoming) {
  const known = state.messages.get(chatId) || [];
  const byId = new Map(known.map((m) => [m.id, m]));
  let changed = !state.messages.has(chatId);
  for (const message of incoming) {
    if (!byId.has(message.id)) {
      byId.set(message.id, message);
      changed = true;
    }
  }
  if (!changed) return;
  state.messages.set(chatId, [...byId.values()].sort((a, b) => a.id - b.id));
  notePreview(chatId, state.messages.get(chatId).at(-1));
  if (chatId === state.openChatId) {
    renderMessages();
    markRead(chatId);
  }
}

/** Keeps the chat list's preview in step with messages seen live. */
function notePreview(chatId, message) {
  const chat = state.chats.find((c) => c.id === chatId);
  if (!chat || !message) return;
  if (chat.last_message && chat.last_message.id >= message.id) return;
  chat.last_message = message;
  renderChatList();
}

function handleIncomingMessage(message) {
  const chatId = Number(message.chat_id);
  if (!state.chats.some((c) => c.id === chatId)) {
    loadChats().catch(() => {});
  }
  if (state.messages.has(chatId) || chatId === state.openChatId) mergeMessages(chatId, [message]);
  else notePreview(chatId, message);
  // Unread when nobody looks at it; a call event counts for the callee only (a missed call is news).
  if (!chatIsSeen(chatId) && message.sender.id !== state.me.id) {
    state.unread.set(chatId, unreadOf(chatId) + 1);
    // The chat with news moves to the top.
    state.chats.sort((a, b) => (a.id === chatId ? -1 : b.id === chatId ? 1 : 0));
    renderChatList();
  }
}

function renderMessages() {
  const list = $('#messages');
  const messages = state.messages.get(state.openChatId);
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  if (!messages) {
    list.replaceChildren(el('li', { class: 'messages-note', text: 'Loading messages…' }));
    return;
  }
  if (messages.length === 0) {
    list.replaceChildren(el('li', { class: 'messages-note', text: 'No messages yet. Say hello!' }));
    return;
  }
  list.replaceChildren(
    ...messages.map((m) => {
      if (m.kind === 'call') return renderCallEvent(m);
      const mine = m.sender.id === state.me.id;
      return el(
        'li',
        { class: `message ${mine ? 'mine' : 'theirs'}`, 'data-testid': 'message', 'data-message-id': m.id },
        mine ? null : el('span', { class: 'message-sender', text: displayName(m.sender) }),
        el('p', { class: 'message-body', text: m.body }),
        el('time', { datetime: m.created_at, text: formatTime(m.created_at) }),
      );
    }),
  );
  if (nearBottom || list.dataset.chat !== String(state.openChatId)) list.scrollTop = list.scrollHeight;
  list.dataset.chat = String(state.openChatId);
}

/** A call in the chat's history: what happened, worded for me, and Call back. */
function renderCallEvent(message) {
  const { text, outcome, outgoing, missed } = describeCallEvent(message, state.me.id);
  const chat = state.chats.find((c) => c.id === Number(message.chat_id));
  const peer = chat && peerOf(chat);
  return el(
    'li',
    {
      class: `call-event${missed ? ' missed' : ''}`,
      'data-testid': 'call-event',
      'data-outcome': outcome,
      'data-direction': outgoing ? 'outgoing' : 'incoming',
      'data-message-id': message.id,
    },
    el('span', { class: 'call-event-icon', 'aria-hidden': 'true', text: outgoing ? '↗' : '↙' }),
    el(
      'span',
      { class: 'call-event-text' },
      el('strong', { text }),
      el('time', { datetime: message.created_at, text: formatTime(message.created_at) }),
    ),
    peer
      ? el('button', {
          type: 'button',
          class: 'btn call-back',
          'data-testid': 'call-back',
          'aria-label': `Call back ${displayName(peer)}`,
          text: 'Call back',
          onclick: () => startCallIn(chat),
        })
      : null,
  );
}

/** Start Video Call (the header button, Call back): the chat list's presence comes along. */
function startCallIn(chat) {
  if (!chat || !isDirect(chat) || !state.calls) return;
  state.calls.startCall(chat, { peerOnline: peerOf(chat).online });
}

function bindChat() {
  window.addEventListener('hashchange', route);
  $('#back').addEventListener('click', () => {
    location.hash = '';
  });
  $('#logout').addEventListener('click', logout);

  $('#composer').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('[data-testid="message-input"]');
    const body = input.value.trim();
    const chatId = state.openChatId;
    if (!body || !chatId) return;
    showError($('#send-error'), '');
    await withBusy($('[data-testid="message-send"]'), async () => {
      try {
        const message = await api.postMessage(chatId, body);
        input.value = '';
        mergeMessages(chatId, [message]);
        $('#messages').scrollTop = $('#messages').scrollHeight;
      } catch (err) {
        // The text stays in the box, so nothing typed is lost.
        showError($('#send-error'), `Message not sent: ${err.message}`);
      }
    });
    input.focus();
  });

  $('#new-chat-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('#new-chat-username');
    const username = input.value.trim().replace(/^@/, '');
    const error = $('#new-chat-error');
    showError(error, '');
    if (!username) return;
    if (username.toLowerCase() === state.me.username) {
      showError(error, 'That is you. Enter someone else’s username.');
      return;
    }
    await withBusy($('#new-chat-submit'), async () => {
      try {
        const chat = await api.createChat([username]);
        input.value = '';
        await loadChats();
        location.hash = `#/chats/${chat.id}`;
      } catch (err) {
        showError(error, /unknown user/i.test(err.message) ? `No user called “${username}”.` : err.message);
      }
    });
  });

  $('[data-testid="start-call"]').addEventListener('click', () => {
    startCallIn(state.chats.find((c) => c.id === state.openChatId));
  });
}

// ---- the call window ----------------------------------------------------------------------------

let callClock = null;
const ringer = new Ringer();
let callWindow = null;

function bindCall() {
  callWindow = new CallWindow({ calls: () => state.calls, config });
  bindNotificationPrompt($('#notify-calls'));
  $('[data-testid="accept-call"]').addEventListener('click', () => state.calls.accept());
  $('[data-testid="decline-call"]').addEventListener('click', () => state.calls.decline());
  $('[data-testid="hangup"]').addEventListener('click', () => state.calls.hangup());
  $('[data-testid="toggle-mute"]').addEventListener('click', () => state.calls.toggleMute());
  $('[data-testid="toggle-camera"]').addEventListener('click', () => state.calls.toggleCamera());
  $('[data-testid="call-close"]').addEventListener('click', () => state.calls.dismiss());
  $('[data-testid="call-devices"]').addEventListener('click', () => devicePanel.open());
  $('#call-again').addEventListener('click', () => {
    const call = state.calls.call;
    const chat = call && state.chats.find((c) => c.id === call.chatId);
    state.calls.dismiss();
    if (chat) state.calls.startCall(chat);
  });
  $('#remote-video').addEventListener('click', (event) => event.currentTarget.play().catch(() => {}));
  // Escape (decline / "Hang up?" / close) is the call window's: see call-window.js.
}

function attachStream(video, stream) {
  if (video.srcObject !== stream) video.srcObject = stream || null;
  if (stream && video.paused) {
    // Autoplay can be refused (no user gesture yet); a click on the video starts it.
    video.play().catch(() => {});
  }
}

function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return `${minutes}:${seconds}`;
}

const STATUS_HINTS = {
  calling: 'Calling…',
  ringing: 'Ringing…',
  connecting: 'Connecting…',
  reconnecting: 'Connection interrupted, reconnecting…',
};

function renderCall(call) {
  const modal = $('#call-modal');
  clearInterval(callClock);
  renderTitle();
  // The ringer flashes the title while a call comes in, and restores it when the ringing stops.
  ringer.update(call, call ? displayName(call.peer) : '');
  if (!call) {
    modal.hidden = true;
    attachStream($('#local-video'), null);
    attachStream($('#remote-video'), null);
    document.body.classList.remove('in-call');
    callWindow.render(null);
    return;
  }
  modal.hidden = false;
  document.body.classList.add('in-call');
  modal.dataset.status = call.status;
  modal.classList.toggle('incoming', call.incoming);
  modal.classList.toggle('over', call.over);

  const peerName = displayName(call.peer);
  $('#call-peer').textContent = peerName;
  paintAvatar($('#call-avatar'), peerName);
  const status = $('[data-testid="call-status"]');
  status.textContent = call.status; // exactly the status word; the reason is separate
  status.dataset.status = call.status;

  let reason = call.reason;
  if (!reason && call.incoming) reason = `${peerName} is calling you…`;
  if (!reason) reason = STATUS_HINTS[call.status] || '';
  const reasonNode = $('[data-testid="call-reason"]');
  reasonNode.textContent = reason;
  // What happened, for machines (tests, styles): declined, no-answer, offline, busy, hangup, …
  reasonNode.dataset.reason = call.reasonCode || '';

  // Direct or through the TURN relay: it tells a person (and support) why a call may lag.
  const path = $('[data-testid="call-path"]');
  path.hidden = !call.path || call.over;
  path.dataset.path = call.path || '';
  path.textContent = call.path === 'relayed' ? 'Relayed (TURN)' : call.path === 'direct' ? 'Direct' : '';
  path.title =
    call.path === 'relayed'
      ? 'No direct path between you: the media goes through the server’s relay.'
      : 'The media goes directly between you.';

  const timer = $('#call-timer');
  const tick = () => {
    timer.textContent = call.connectedAt ? formatDuration((call.endedAt || Date.now()) - call.connectedAt) : '';
  };
  tick();
  if (call.connectedAt && !call.over) callClock = setInterval(tick, 1000);

  attachStream($('#local-video'), call.over ? null : call.localStream);
  attachStream($('#remote-video'), call.over ? null : call.remoteStream);
  renderMediaState(call, peerName);

  $('#incoming-controls').hidden = !call.incoming || call.over;
  $('#active-controls').hidden = call.incoming || call.over;
  $('#over-controls').hidden = !call.over;
  $('#call-again').hidden = !(call.over && call.role === 'caller' && call.status === 'failed');

  const mute = $('[data-testid="toggle-mute"]');
  mute.setAttribute('aria-pressed', String(call.muted));
  mute.querySelector('.label').textContent = call.muted ? 'Unmute' : 'Mute';
  mute.disabled = !call.localStream;

  // Focus, Escape, announcements, minimize and closing by itself: once the controls are drawn.
  callWindow.render(call, peerName);
}

// ---- media state, quality and devices in the call window ----------------------------------------

const QUALITY_LABELS = { good: 'Good connection', fair: 'Fair connection', poor: 'Poor connection' };

/**
 * What each side sends: the peer's avatar instead of video when their camera is off (or gives
 * no frames), a muted-microphone icon while they are muted, our own self-view or "Camera off",
 * the camera button (disabled, with the reason, on an audio-only call) and the quality bars.
 */
function renderMediaState(call, peerName) {
  const live = !call.over;
  const peer = peerMedia(call);
  const connected = live && call.status === 'connected';
  $('#remote-placeholder').hidden = connected && peer.video;
  const cameraNote = $('#remote-camera-note');
  cameraNote.hidden = !connected || peer.video;
  cameraNote.textContent =
    call.peerMedia && !call.peerMedia.video ? `${peerName}’s camera is off` : `No video from ${peerName}`;

  const muted = $('#remote-muted');
  muted.hidden = !(live && call.connectedAt && !peer.audio);
  muted.setAttribute('aria-label', `${peerName} is muted`);
  muted.title = `${peerName} is muted`;

  const sendsVideo = Boolean(call.localStream && call.localStream.getVideoTracks().length) && !call.cameraOff;
  $('#local-video').hidden = !live || !sendsVideo;
  const localOff = $('#local-off');
  localOff.hidden = !live || !call.localStream || sendsVideo;
  localOff.querySelector('span').textContent = call.cameraUnavailable ? 'No camera' : 'Camera off';

  const camera = $('[data-testid="toggle-camera"]');
  camera.setAttribute('aria-pressed', String(call.cameraOff && !call.cameraUnavailable));
  camera.querySelector('.label').textContent = call.cameraUnavailable ? 'No camera' : call.cameraOff ? 'Camera on' : 'Camera off';
  camera.disabled = !call.localStream || Boolean(call.cameraUnavailable) || Boolean(call.cameraSwitching);
  camera.title = call.cameraUnavailable ? `${call.cameraUnavailable} The call is audio-only.` : '';

  const quality = $('[data-testid="call-quality"]');
  const level = call.quality && call.quality.level;
  quality.hidden = !live || !call.connectedAt || !level;
  quality.dataset.quality = level || '';
  quality.querySelector('.quality-label').textContent = level ? QUALITY_LABELS[level] : '';
  quality.title = call.quality
    ? `Round trip ${call.quality.rttMs == null ? 'unknown' : `${call.quality.rttMs} ms`}, packet loss ${call.quality.lossPct} %`
    : '';

  // The chosen speaker, once the call may use devices (setSinkId needs that permission).
  if (live && call.localStream) applySpeaker($('#remote-video'));
}

let devicePanel = null;

function bindDevices() {
  devicePanel = new DevicePanel({
    dialog: $('#device-panel'),
    callStream: () => {
      const call = state.calls && state.calls.call;
      return call && !call.over ? call.localStream : null;
    },
    onChoose: (choice, deviceId) => {
      if (choice === 'speaker') applySpeaker($('#remote-video'), deviceId);
      else if (state.calls && state.calls.active) state.calls.switchDevice(choice, deviceId);
    },
  });
  $('[data-testid="open-settings"]').addEventListener('click', () => devicePanel.open());
}

// ---- debugging info -----------------------------------------------------------------------------

// For the console and the browser tests: what the client is doing right now.
window.switchboard = {
  config,
  get user() {
    return state.me;
  },
  get transport() {
    return state.transport ? state.transport.mode : null;
  },
  get transportHistory() {
    return state.transport ? state.transport.history.slice() : [];
  },
  get cursor() {
    return state.transport ? state.transport.cursor : 0;
  },
  /** The ringing cues now on, and `level()`: the tone's peak amplitude as it leaves. */
  get ringer() {
    return { ...ringer.state, level: () => ringer.level() };
  },
  get pc() {
    const call = state.calls && state.calls.call;
    return call ? call.pc : null;
  },
  get device() {
    return deviceId();
  },
  get calls() {
    return state.calls; // the CallManager, for tests that force an action (a late Accept)
  },
  /** The last call that ended (its window may be closed already): status, reason, reasonCode. */
  get lastCall() {
    const call = state.calls && state.calls.lastCall;
    return call ? { id: call.id, status: call.status, reason: call.reason, reasonCode: call.reasonCode, statusLog: call.statusLog.slice() } : null;
  },
  get unread() {
    return totalUnread();
  },
  get call() {
    const call = state.calls && state.calls.call;
    if (!call) return null;
    const { id, chatId, role, status, reason, clickedAt, connectedAt, endedAt, iceRestarts, statusLog } = call;
    const { path, hasRelay, relayOnly, reasonCode } = call;
    return {
      id, chatId, role, status, reason, clickedAt, connectedAt, endedAt, iceRestarts,
      statusLog: statusLog.slice(), path, hasRelay, relayOnly, reasonCode,
      quality: call.quality ? { ...call.quality } : null,
      media: { muted: call.muted, cameraOff: call.cameraOff, cameraUnavailable: call.cameraUnavailable, peer: peerMedia(call) },
    };
  },
};

// ---- start --------------------------------------------------------------------------------------

async function boot() {
  bindAuth();
  bindChat();
  bindCall();
  bindDevices();
  bindPresence();
  try {
    const { user } = await api.me();
    await enterApp(user);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) {
      toast(err.message, 'error');
    }
    showAuth();
  }
}

boot();
