// call.js — browser video calls, built the way the debugging guide describes them.
//
// The guide's functions keep their names and console words, so the guide stays true:
//   send(type, payload)      sends a signal by WebSocket when it is open AND by the server relay,
//                            both with the same signal_id (the server stores it once)
//   sendViaServerRelay()     POST /api/p2p/send-signal/ with the X-CSRFToken header; retried with
//                            backoff on failure, reusing the signal_id
//   startSignalPolling()     long-poll, or poll every 1.5 s — only while no push transport is up
//                            (transport.js decides when)
//   setupPeer()              the RTCPeerConnection, with the ICE servers from the server
//
// A call, as signals (every payload carries `call_id`, so signals of an old call are ignored):
//   caller                                   callee
//   call.invite {call_id, video}   ──────▶   rings; answers call.ringing
//   (delivered receipt or call.ringing: "ringing")
//                                  ◀──────   call.accept | call.decline
//   webrtc.offer                   ──────▶
//                                  ◀──────   webrtc.answer
//   webrtc.ice                     ◀─────▶   webrtc.ice (queued until the remote description is set)
//   call.cancel (gave up ringing) / call.end (hung up), from either side
// Every payload also carries the sender's `device` (this tab, device.js), so a call is its id plus
// the two devices in it; webrtc.* payloads carry `pc` (the sender's RTCPeerConnection) and `to_pc`
// (the receiver's, once known), so descriptions meant for a connection replaced by a rejoin are
// dropped. A reload sends `call.away` instead of ending the call, and the reloaded tab rejoins
// with `call.rejoin` and a fresh offer (docs/CALLS.md "Reload and rejoin").
// Descriptions follow "perfect negotiation": the user with the higher id is polite (yields when
// both offer at once), so glare and ICE restarts always settle on one negotiation.

import { api, ApiError } from './api.js';
import { deviceId } from './device.js';
import { openMedia } from './devices.js';
import { QUALITY_INTERVAL_MS, qualityBetween, readStats } from './quality.js';

const CALL_SIGNAL = /^(call|webrtc)\./;
const RELAY_RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000];
const LONGPOLL_WAIT_S = 25;
const POLL_INTERVAL_MS = 1500;
// Browsers allow ~6 connections per host; long-polls beyond these few chats would starve fetches.
const MAX_HELD_LONGPOLLS = 3;
const INCOMING_GRACE_MS = 15000;
const MAX_ICE_RESTARTS = 3;
// How long "Answered on another device" stays up before the window closes.
const ELSEWHERE_CLOSE_MS = 4000;
// A caller who left (reload) while it rang gets this long to come back before we stop ringing.
const AWAY_RING_GRACE_MS = 10000;
// A description or answer that could not be sent is sent again this often (the network is back
// soon, or the grace window ends the call): a network blip must not end a call by itself.
const RESEND_DELAY_MS = 2000;
// getUserMedia errors after which a call goes on without the camera (audio only), as long as
// the microphone alone still works.
const CAMERA_FALLBACK_ERRORS = new Set(['NotFoundError', 'NotAllowedError', 'NotReadableError', 'OverconstrainedError']);

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Why a call could not connect, in words both sides show alike: the side that gives up sends
 * its `cause` in `call.end`, and each side names the other person.
 */
export function connectionFailure(cause, peer) {
  switch (cause) {
    case 'connection-lost':
      return 'The connection was lost and could not be restored.';
    case 'relay-failed':
      return `Could not connect the call: no network path to ${name(peer)}, not even through the relay (TURN) server. A firewall may be blocking it.`;
    case 'no-relay':
      return `Could not connect the call: could not reach ${name(peer)}'s network — no relay (TURN) server available.`;
    default:
      return `Could not connect the call with ${name(peer)}.`;
  }
}

export function isCallSignal(type) {
  return CALL_SIGNAL.test(type);
}

/** A random id; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The guide's sendViaServerRelay(): stores the signal on the server (the database is the source
 * of truth). A failure that may pass (no answer, 429, 5xx) is retried with backoff — honouring
 * Retry-After — with the same signal_id, so a retry of a send that did arrive is not stored twice.
 */
export async function sendViaServerRelay(signal, { keepalive = false } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const result = await api.sendSignal(signal, { keepalive });
      console.log(`Signal sent via server: ${signal.type}`);
      return result;
    } catch (err) {
      const retryable = err instanceof ApiError && err.retryable;
      if (!retryable || attempt >= RELAY_RETRY_DELAYS_MS.length) {
        console.error(`[CallJS] Server relay failed for ${signal.type}: ${err.message}`);
        throw err;
      }
      const wait = Math.max(err.retryAfterMs || 0, RELAY_RETRY_DELAYS_MS[attempt]);
      console.warn(
        `[CallJS] Server relay failed for ${signal.type} (${err.message}); ` +
          `retry ${attempt + 1} in ${wait} ms with the same signal_id`,
      );
      await delay(wait);
    }
  }
}

/**
 * The guide's startSignalPolling(), with a cursor: used only while no push transport is up.
 * With `longPoll`, the most important chats each hold a long-poll (answered the moment a signal
 * is stored); every other chat is polled every 1.5 s. Each response is processed before the next
 * request acknowledges it (its `after` cursor). Resolves to the running loop once a first round
 * of requests has succeeded, and rejects when it fails (so the transport falls back further).
 *
 * `source` is the SignalTransport: chatIds(), cursorFor(), deliver(), drain(), dropped().
 */
export async function startSignalPolling(source, { longPoll = false } = {}) {
  const kind = longPoll ? 'longpoll' : 'polling';
  const controller = new AbortController();
  const held = new Set();
  let stopped = false;
  let timer = null;
  let failures = 0;

  const conn = {
    kind,
    close() {
      stopped = true;
      clearTimeout(timer);
      controller.abort();
    },
  };

  const poll = async (chatId, wait) => {
    const data = await api.signals(chatId, source.cursorFor(chatId), { wait, signal: controller.signal });
    if (stopped) return;
    const signals = data.signals || [];
    console.log(`[Polling] Response: ${data.success} Signals: ${signals.length}`);
    for (const signal of signals) source.deliver(signal, kind);
    await source.drain();
  };

  const failed = (err) => {
    if (stopped || (err && err.name === 'AbortError')) return true;
    failures += 1;
    console.warn(`[Polling] Request failed (${err.message}), ${failures} in a row`);
    if (err.status === 401 || err.status === 403 || failures >= 3) {
      source.dropped(conn, err.message);
      return true;
    }
    return false;
  };

  const heldChats = () => (longPoll ? source.chatIds().slice(0, MAX_HELD_LONGPOLLS) : []);

  const hold = async (chatId) => {
    held.add(chatId);
    while (!stopped && heldChats().includes(chatId)) {
      try {
        await poll(chatId, LONGPOLL_WAIT_S);
        failures = 0;
      } catch (err) {
        if (failed(err)) break;
        await delay(1000 * failures);
      }
    }
    held.delete(chatId);
  };

  const tick = async () => {
    if (stopped) return;
    for (const chatId of heldChats()) if (!held.has(chatId)) hold(chatId);
    try {
      for (const chatId of source.chatIds()) {
        if (!held.has(chatId) && !stopped) await poll(chatId, 0);
      }
      failures = 0;
    } catch (err) {
      if (failed(err) && !stopped) return;
    }
    if (!stopped) timer = setTimeout(tick, POLL_INTERVAL_MS);
  };

  // One immediate round over every chat: it proves this path works (or throws, and the caller
  // falls back) and picks up whatever is waiting.
  for (const chatId of source.chatIds()) await poll(chatId, 0);
  timer = setTimeout(tick, longPoll ? 0 : POLL_INTERVAL_MS);
  return conn;
}

function mediaErrorMessage(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera and microphone access was denied. Allow it for this site in your browser settings, then try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera or microphone was found on this device.';
    case 'NotReadableError':
      return 'Your camera or microphone is in use by another app. Close it and try again.';
    case 'NotSupportedError':
      return 'This browser cannot make video calls here (a secure https connection is needed).';
    default:
      return `Could not start the camera: ${(err && err.message) || err}`;
  }
}

function cameraUnavailableReason(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
      return 'Camera access was denied.';
    case 'NotReadableError':
      return 'The camera is in use by another app.';
    default:
      return 'No camera was found.';
  }
}

const name = (user) => (user && (user.display_name || user.username)) || 'The other person';
// The call record's instants are RFC 3339 strings (docs/CALLS.md); a number is taken as ms.
const toMillis = (value) => (typeof value === 'number' ? value : Date.parse(value)) || null;
const offlineText = (peer) => `${name(peer)} is offline — they will see a missed call.`;

/** The transceiver that sends our `kind` ('audio' | 'video'): the one with a track, else any. */
function transceiverFor(pc, kind) {
  const ofKind = pc
    .getTransceivers()
    .filter((t) => t.currentDirection !== 'stopped' && t.direction !== 'stopped' && t.receiver.track.kind === kind);
  return ofKind.find((t) => t.sender.track) || ofKind.find((t) => /send/.test(t.direction)) || ofKind[0] || null;
}

/**
 * What the peer sends, as the UI shows it: `{video, audio}`. The peer's `call.media` says it;
 * for a peer that never does, a remote track's mute/unmute events stand in. Video also needs a
 * live, unmuted track (frames really arriving), so the avatar shows rather than black.
 */
export function peerMedia(call) {
  const told = call.peerMedia;
  const tracks = call.remoteStream ? call.remoteStream.getTracks().filter((t) => t.readyState === 'live') : [];
  const videoTrack = tracks.find((t) => t.kind === 'video');
  const audioTrack = tracks.find((t) => t.kind === 'audio');
  return {
    // Chromium does not mute a remote track whose sender stopped (replaceTrack(null)), so for a
    // peer that never tells, "no video packets since the last stats sample" stands in as well.
    video: Boolean(videoTrack && !videoTrack.muted) && (told ? told.video : !call.remoteVideoStalled),
    audio: told ? told.audio : !(audioTrack && audioTrack.muted),
  };
}

/**
 * One call at a time. The UI reads `manager.call` (a plain object, below) and re-renders on
 * `onUpdate`; it calls startCall / accept / decline / hangup / toggleMute / toggleCamera.
 */
export class CallManager {
  constructor({ me, transport, config, onUpdate, onNotice }) {
    this.me = me;
    this.transport = transport;
    this.config = config;
    this.onUpdate = onUpdate;
    this.onNotice = onNotice;
    this.call = null;
    this.lastCall = null; // the last call that ended, for the debugging info
    // Leaving the page is not hanging up: the other side is told we are away, and a reload
    // rejoins. Only Hang up (or the grace window) ends a call.
    this.onPageHide = () => this.leaveOnUnload();
    this.onBeforeUnload = (event) => {
      if (!this.inCall) return;
      event.preventDefault();
      event.returnValue = 'Leave call?'; // browsers show their own words; some need a value
    };
    window.addEventListener('pagehide', this.onPageHide);
    window.addEventListener('beforeunload', this.onBeforeUnload);
  }

  destroy() {
    window.removeEventListener('pagehide', this.onPageHide);
    window.removeEventListener('beforeunload', this.onBeforeUnload);
    if (this.call && !this.call.over) this.hangup();
  }

  get active() {
    return Boolean(this.call && !this.call.over);
  }

  /** In a call (placed, or answered): leaving the page asks first. A call ringing here is not. */
  get inCall() {
    return this.active && !this.call.incoming;
  }

  get device() {
    return deviceId();
  }

  newCall({ id, chat, peer, role, status }) {
    return {
      id,
      chatId: Number(chat),
      peer,
      role,
      status,
      reason: '',
      // Machine-readable reason of an end state (declined, no-answer, offline, busy, hangup,
      // connection-failed, media, answered-elsewhere, …), for data-reason.
      reasonCode: '',
      // The other person's device in this call (the caller's, or the answering one) once known;
      // signals of this call from their other devices are ignored.
      peerDevice: null,
      pcId: null,
      remotePcId: null,
      incoming: role === 'callee',
      polite: this.me.id > peer.id,
      over: false,
      accepted: false,
      pc: null,
      localStream: null,
      remoteStream: null,
      pendingCandidates: [],
      earlyDescriptions: [],
      makingOffer: false,
      ignoreOffer: false,
      tracksAttached: false,
      inviteSignalId: null,
      inviteDelivered: false,
      iceRestarts: 0,
      // ICE: the servers of this call (fetched afresh, with TURN credentials), whether one of them
      // is a relay, whether we fell back to relay-only, and the media path once connected.
      iceServers: [],
      icePrefetch: null, // the ICE servers loading for the first connection
      hasRelay: false,
      relayOnly: false,
      path: null,
      timers: {},
      muted: false,
      cameraOff: false,
      // Media state: why the call is audio-only ('' when the camera works), what the peer said
      // of its microphone and camera (`call.media`), and the connection quality.
      cameraUnavailable: '',
      peerMedia: null,
      quality: null,
      remoteVideoStalled: false,
      clickedAt: null,
      connectedAt: null,
      endedAt: null,
      statusLog: [],
    };
  }

  update() {
    this.onUpdate(this.call);
  }

  setStatus(call, status, reason = '', code = '', { final = false } = {}) {
    if (call.over && !final) return;
    if (call.status === status && call.reason === reason && call.reasonCode === code) return;
    call.status = status;
    call.reason = reason;
    call.reasonCode = code;
    call.statusLog.push({ status, at: Date.now() });
    console.log(`[CallJS] Call status: ${status}${reason ? ` (${reason})` : ''}`);
    if (call === this.call) this.update();
  }

  // ---- sending ----------------------------------------------------------------------------

  /**
   * The guide's send(): the WebSocket when it is open (fast) and the server relay (stored), with
   * one signal_id, so the server keeps it once whichever path gets there first. Resolves with the
   * first answer ({recipients, online, signal_id}); rejects only when both paths failed.
   */
  async send(type, payload, { call = this.call, signalId = newId(), keepalive = false } = {}) {
    // Every call signal says which device sent it (docs/CALLS.md "Devices").
    payload = { ...payload, device: deviceId() };
    if (type.startsWith('webrtc.') && call.remotePcId) payload.to_pc = call.remotePcId;
    const signal = { chat_id: call.chatId, type, payload, signal_id: signalId, to: call.peer.id };
    console.log(`[CallJS] Sending ${type}...`);
    const paths = [];
    if (!keepalive && this.transport.isWebSocketOpen()) {
      paths.push(this.transport.sendFrame({ op: 'send', ...signal }));
      console.log(`✓ Sent ${type} via WebSocket`);
    } else {
      console.log(`[CallJS] WS not ready, sending ${type} by server relay only`);
    }
    paths.push(sendViaServerRelay(signal, { keepalive }));
    try {
      return await Promise.any(paths);
    } catch (aggregate) {
      throw aggregate.errors[aggregate.errors.length - 1];
    }
  }

  // ---- media and the peer connection --------------------------------------------------------

  /** Camera and microphone (or the microphone alone), on the devices the person chose. */
  async getMedia({ video = true } = {}) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      const err = new Error('getUserMedia unavailable');
      err.name = 'NotSupportedError';
      throw err;
    }
    return openMedia({ video, audio: true });
  }

  /**
   * The server's STUN/TURN servers, fetched afresh for every call: TURN credentials are minted
   * per request and only new allocations need them unexpired, so a call outlives them.
   */
  async loadIceServers(call) {
    try {
      const { iceServers } = await api.iceServers();
      call.iceServers = iceServers;
    } catch (err) {
      console.warn(`[CallJS] Could not load ICE servers (${err.message}); trying without`);
    }
    call.hasRelay = call.iceServers.some((server) =>
      [].concat(server.urls).some((url) => /^turns?:/.test(url)),
    );
  }

  /** The guide's setupPeer(): an RTCPeerConnection with the server's ICE servers. */
  async setupPeer(call) {
    // The first connection of a call uses the servers fetched while the camera started (or while
    // it rang); a later one (a rejoin) fetches fresh credentials.
    if (call.icePrefetch) {
      await call.icePrefetch;
      call.icePrefetch = null;
    } else {
      await this.loadIceServers(call);
    }
    if (call.over) return; // hung up while the ICE servers loaded
    const pc = new RTCPeerConnection({ iceServers: call.iceServers });
    const pcId = newId();
    call.pc = pc;
    call.pcId = pcId;
    call.remoteStream = new MediaStream();
    // After a rejoin replaced this connection, its late events are no longer ours.
    const stale = () => call.pc !== pc;
    console.log(
      `[CallJS] Peer connection set up with ${call.iceServers.length} ICE server(s)` +
        (call.hasRelay ? ' (relay available)' : ' (no relay)'),
    );

    pc.onicecandidate = ({ candidate }) => {
      if (!candidate || call.over || stale()) return;
      this.send('webrtc.ice', { call_id: call.id, pc: pcId, candidate: candidate.toJSON() }, { call }).catch((err) =>
        console.warn(`[CallJS] ICE candidate not sent: ${err.message}`),
      );
    };
    pc.ontrack = ({ track }) => {
      if (stale()) return;
      call.remoteStream.addTrack(track);
      this.watchRemoteTrack(call, track);
      if (call === this.call) this.update();
    };
    pc.onnegotiationneeded = async () => {
      if (call.over || stale()) return;
      try {
        call.makingOffer = true;
        await pc.setLocalDescription();
      } catch (err) {
        console.error('[CallJS] Could not create an offer:', err);
        return;
      } finally {
        call.makingOffer = false;
      }
      this.sendDescription(call, pc, 'webrtc.offer');
    };
    pc.oniceconnectionstatechange = () => {
      if (stale()) return;
      console.log(`[CallJS] ICE connection state: ${pc.iceConnectionState}`);
      if (pc.iceConnectionState === 'failed') this.connectionBroke(call, true);
    };
    pc.onconnectionstatechange = () => {
      if (!stale()) this.onConnectionState(call);
    };

    // Descriptions that arrived before the connection existed (only in unusual orders).
    for (const description of call.earlyDescriptions.splice(0)) await this.handleDescription(call, description);
  }

  /**
   * Sends this connection's current offer or answer. A send that fails (the network is down) is
   * tried again until it goes through, the connection is replaced or the call is over: losing
   * the network for a moment must not end the call — only the grace window does.
   */
  async sendDescription(call, pc, type) {
    for (;;) {
      if (call.over || call.pc !== pc || !pc.localDescription) return;
      try {
        await this.send(type, { call_id: call.id, pc: call.pcId, sdp: pc.localDescription.toJSON() }, { call });
        return;
      } catch (err) {
        console.warn(`[CallJS] ${type} not sent (${err.message}); trying again in ${RESEND_DELAY_MS} ms`);
        this.armGiveUp(call);
        await delay(RESEND_DELAY_MS);
      }
    }
  }

  attachLocalTracks(call) {
    if (call.tracksAttached || !call.localStream || !call.pc) return;
    call.tracksAttached = true;
    // After a remote offer, addTrack reuses its transceivers, so the answer sends both ways
    // without a second negotiation.
    for (const track of call.localStream.getTracks()) call.pc.addTrack(track, call.localStream);
  }

  async handleDescription(call, description) {
    const pc = call.pc;
    if (!pc) {
      call.earlyDescriptions.push(description);
      return;
    }
    const offerCollision = description.type === 'offer' && (call.makingOffer || pc.signalingState !== 'stable');
    call.ignoreOffer = !call.polite && offerCollision;
    if (call.ignoreOffer) {
      console.log('[CallJS] Both sides offered at once; keeping ours (impolite side)');
      return;
    }
    await pc.setRemoteDescription(description); // the polite side rolls its own offer back
    if (description.type === 'offer') {
      this.attachLocalTracks(call);
      await pc.setLocalDescription();
      this.sendDescription(call, pc, 'webrtc.answer');
    }
    await this.flushCandidates(call);
  }

  candidateFits(pc, candidate) {
    // A candidate belongs to one ICE generation (its ufrag); one from a restart can arrive before
    // the description that starts that generation.
    if (!pc || !pc.remoteDescription) return false;
    const ufrag = candidate.usernameFragment;
    return !ufrag || pc.remoteDescription.sdp.includes(`a=ice-ufrag:${ufrag}`);
  }

  async handleCandidate(call, candidate) {
    if (!this.candidateFits(call.pc, candidate)) {
      // Queued, not dropped: the remote description is on its way.
      if (call.pendingCandidates.length < 500) call.pendingCandidates.push(candidate);
      return;
    }
    try {
      await call.pc.addIceCandidate(candidate);
      // Checks from the other side's relay can connect before its relay candidate arrives: the
      // selected pair's far end is then peer-reflexive ("direct") until this candidate renames
      // it `relay`. Read the media path again.
      if (call.connectedAt && call.path !== 'relayed') this.learnPath(call);
    } catch (err) {
      if (!call.ignoreOffer) console.warn(`[CallJS] Could not add an ICE candidate: ${err.message}`);
    }
  }

  async flushCandidates(call) {
    const waiting = call.pendingCandidates.splice(0);
    for (const candidate of waiting) await this.handleCandidate(call, candidate);
  }

  onConnectionState(call) {
    const state = call.pc.connectionState;
    console.log(`[CallJS] Connection state: ${state}`);
    if (call.over) return;
    if (state === 'connected') {
      clearTimeout(call.timers.giveUp);
      clearTimeout(call.timers.restart);
      call.timers.giveUp = null;
      call.iceRestarts = 0;
      if (!call.connectedAt) call.connectedAt = Date.now();
      this.setStatus(call, 'connected');
      this.learnPath(call);
      this.sendMediaState(call); // again after every reconnect, so a rejoined peer learns it
      this.watchQuality(call);
    } else if (state === 'disconnected') {
      this.connectionBroke(call, false);
    } else if (state === 'failed') {
      this.connectionBroke(call, true);
    }
  }

  /**
   * The media path broke. "disconnected" often heals by itself, so it gets a few seconds; a
   * failed ICE connection gets an ICE restart at once. Either way the call is given up only
   * after `iceGiveUpMs` without recovering.
   */
  connectionBroke(call, failed) {
    if (call.over || !call.accepted) return;
    if (call.connectedAt) this.setStatus(call, 'reconnecting');
    if (failed) this.restartIce(call);
    else if (!call.timers.restart) {
      call.timers.restart = setTimeout(() => {
        call.timers.restart = null;
        if (!call.over && call.pc && call.pc.connectionState !== 'connected') this.restartIce(call);
      }, 3000);
    }
    this.armGiveUp(call);
  }

  restartIce(call) {
    if (call.over || !call.pc || call.iceRestarts >= MAX_ICE_RESTARTS) return;
    call.iceRestarts += 1;
    if (call.hasRelay && !call.relayOnly && !call.connectedAt) {
      this.retryThroughRelay(call);
      return;
    }
    console.log(`[CallJS] ICE connection failed: restarting ICE (attempt ${call.iceRestarts})`);
    call.pc.restartIce(); // fires negotiationneeded: a new offer with fresh ICE credentials
  }

  /**
   * No direct path worked: try once more with relay candidates only (ICE restart with
   * iceTransportPolicy "relay"), with fresh TURN credentials. Direct candidates that cannot
   * connect would otherwise keep ICE busy until the give-up timer.
   */
  async retryThroughRelay(call) {
    call.relayOnly = true;
    console.log('[CallJS] ICE failed with direct candidates; retrying through the relay (TURN)');
    await this.loadIceServers(call);
    if (call.over || !call.pc) return;
    try {
      call.pc.setConfiguration({ iceServers: call.iceServers, iceTransportPolicy: 'relay' });
    } catch (err) {
      console.warn(`[CallJS] Could not switch to relay-only ICE: ${err.message}`);
    }
    call.pc.restartIce();
    // The relay gets the full give-up time of its own.
    clearTimeout(call.timers.giveUp);
    call.timers.giveUp = null;
    this.armGiveUp(call);
  }

  /** Whether the media flows directly or through the TURN relay, from the selected pair. */
  async learnPath(call) {
    const pc = call.pc;
    if (!pc) return;
    try {
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((report) => {
        if (report.type === 'transport' && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
      });
      if (!pair) {
        stats.forEach((report) => {
          if (report.type === 'candidate-pair' && report.nominated && report.state === 'succeeded') pair = report;
        });
      }
      if (!pair) return;
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      const relayed = [local, remote].some((c) => c && c.candidateType === 'relay');
      call.path = relayed ? 'relayed' : 'direct';
      console.log(
        `[CallJS] Media path: ${call.path} (local ${local && local.candidateType}, remote ${remote && remote.candidateType})`,
      );
      if (call === this.call) this.update();
    } catch (err) {
      console.warn(`[CallJS] Could not read the media path: ${err.message}`);
    }
  }

  /**
   * Gives up on a call whose media path is not working: after `iceGiveUpMs` while it is being
   * set up, after the rejoin grace window (`rejoinGraceMs`) once it was connected (the other side
   * may be reloading).
   */
  armGiveUp(call) {
    if (call.timers.giveUp || call.over) return;
    const wait = call.connectedAt ? Math.max(this.config.iceGiveUpMs, this.config.rejoinGraceMs) : this.config.iceGiveUpMs;
    call.timers.giveUp = setTimeout(() => {
      call.timers.giveUp = null;
      if (call.over || (call.pc && call.pc.connectionState === 'connected')) return;
      const cause = call.connectedAt ? 'connection-lost' : call.hasRelay ? 'relay-failed' : 'no-relay';
      // The other side is told why, so both show the same reason (not "ended the call").
      this.send('call.end', { call_id: call.id, reason: 'connection-failed', cause }, { call }).catch(() => {});
      this.fail(call, connectionFailure(cause, call.peer), 'connection-failed');
    }, wait);
  }

  // ---- what the person does -----------------------------------------------------------------

  /**
   * Start Video Call in a one-to-one chat. `peerOnline: false` (the chat list says the other
   * person has no live connection) still places the call — they may be connecting right now —
   * but says at once that they will most likely see a missed call.
   */
  async startCall(chat, { peerOnline } = {}) {
    if (this.active) {
      this.onNotice('You are already in a call.');
      return;
    }
    const peer = chat.participants.find((p) => p.id !== this.me.id);
    if (!peer) return;
    const call = this.newCall({ id: newId(), chat: chat.id, peer, role: 'caller', status: 'calling' });
    call.clickedAt = Date.now();
    call.statusLog.push({ status: 'calling', at: call.clickedAt });
    if (peerOnline === false) {
      call.reason = offlineText(peer);
      call.reasonCode = 'offline';
    }
    this.call = call;
    this.update();

    call.icePrefetch = this.loadIceServers(call); // while the camera starts
    if (!(await this.acquireMedia(call))) return;
    await this.setupPeer(call);
    // Hung up meanwhile, or the other side called at the same moment and we answered theirs.
    if (call.over || call.role !== 'caller') return;

    call.inviteSignalId = newId(); // known before sending: its receipt may beat the answer
    call.timers.ring = setTimeout(() => this.ringTimedOut(call), this.config.ringTimeoutMs);
    let result;
    try {
      result = await this.send('call.invite', { call_id: call.id, video: !call.cameraUnavailable }, { call, signalId: call.inviteSignalId });
    } catch (err) {
      if (err.code === 'busy') {
        // The server keeps the record of it: the other person sees it in the chat's history.
        this.finish(call, 'ended', `${name(peer)} is in another call.`, 'busy');
      } else if (err.code === 'already_in_call') {
        this.fail(call, 'You are already in a call on another device.', 'already-in-call');
      } else {
        this.fail(call, `Could not place the call: ${err.message}`, 'error');
      }
      return;
    }
    if (result && result.online === 0 && !call.inviteDelivered) {
      console.log(`[CallJS] ${name(peer)} has no open connection; waiting briefly for a delivery receipt`);
      call.timers.unreachable = setTimeout(() => {
        if (!call.inviteDelivered && !call.accepted) this.unreachable(call, offlineText(peer));
      }, this.config.unreachableGraceMs);
    }
  }

  /**
   * Opens the camera and microphone for `call`. False when the call cannot go on: access was
   * denied (the call fails with a message saying what to do; `onDenied` tells the other side)
   * or the call ended while the browser was asking.
   */
  async acquireMedia(call, { onDenied } = {}) {
    try {
      call.localStream = await this.getMedia();
    } catch (err) {
      console.warn(`[CallJS] getUserMedia failed: ${err.name}`);
      let failure = err;
      if (CAMERA_FALLBACK_ERRORS.has(err.name)) {
        // No camera (or not allowed, or busy): the call goes on with the microphone alone.
        try {
          call.localStream = await this.getMedia({ video: false });
          call.cameraUnavailable = cameraUnavailableReason(err);
          console.log(`[CallJS] Camera unavailable (${err.name}): going on as an audio-only call`);
        } catch (audioErr) {
          console.warn(`[CallJS] getUserMedia (microphone only) failed: ${audioErr.name}`);
          failure = audioErr;
        }
      }
      if (!call.localStream) {
        onDenied?.();
        this.fail(call, mediaErrorMessage(failure), 'media');
        return false;
      }
    }
    if (call.over) {
      call.localStream.getTracks().forEach((t) => t.stop());
      return false;
    }
    this.update();
    return true;
  }

  ringTimedOut(call) {
    if (call.over || call.accepted) return;
    this.send('call.cancel', { call_id: call.id, reason: 'no-answer' }, { call }).catch(() => {});
    this.fail(call, `${name(call.peer)} did not answer.`, 'no-answer');
  }

  unreachable(call, reason) {
    if (call.over || call.accepted) return;
    this.send('call.cancel', { call_id: call.id, reason: 'unreachable' }, { call }).catch(() => {});
    this.fail(call, reason, 'offline');
  }

  async accept() {
    const call = this.call;
    if (!call || !call.incoming || call.over) return;
    call.incoming = false;
    call.accepted = true;
    clearTimeout(call.timers.incoming);
    this.setStatus(call, 'connecting');
    const declineForMedia = () =>
      this.send('call.decline', { call_id: call.id, reason: 'media' }, { call }).catch(() => {});
    if (!call.icePrefetch) call.icePrefetch = this.loadIceServers(call); // a resumed ring has none
    if (!(await this.acquireMedia(call, { onDenied: declineForMedia }))) return;
    await this.setupPeer(call);
    if (call.over) return;
    this.armGiveUp(call);
    try {
      await this.send('call.accept', { call_id: call.id, pc: call.pcId }, { call });
    } catch (err) {
      // Another of my devices answered (or the call ended) first: this tab only steps aside.
      // It sends nothing, so it can never end or take over the live call.
      if (err.code === 'answered_elsewhere') this.elsewhere(call, 'answered');
      else if (err.code === 'call_over') this.elsewhere(call, 'over');
      else this.fail(call, `Could not answer the call: ${err.message}`, 'error');
    }
  }

  decline() {
    const call = this.call;
    if (!call || !call.incoming || call.over) return;
    this.send('call.decline', { call_id: call.id }, { call }).catch((err) => {
      if (err.code === 'answered_elsewhere') this.onNotice('That call was already answered on another device.');
    });
    this.finish(call, 'ended', 'You declined the call.', 'declined');
    this.dismiss();
  }

  /**
   * The call was answered or declined on another device of mine (or is over): stop ringing at
   * once, say so, and close the window a few seconds later. Nothing is sent.
   */
  elsewhere(call, outcome) {
    const text =
      outcome === 'declined'
        ? 'Declined on another device.'
        : outcome === 'over'
          ? 'This call has already ended.'
          : 'Answered on another device.';
    console.log(`[CallJS] Call ${call.id}: ${text}`);
    this.finish(call, 'answered-elsewhere', text, 'answered-elsewhere');
    setTimeout(() => {
      if (this.call === call) this.dismiss();
    }, ELSEWHERE_CLOSE_MS);
  }

  hangup() {
    const call = this.call;
    if (!call || call.over) return;
    if (call.incoming) {
      this.decline();
      return;
    }
    if (call.inviteSignalId || call.role === 'callee') {
      const type = call.accepted ? 'call.end' : 'call.cancel';
      this.send(type, { call_id: call.id }, { call }).catch(() => {});
    }
    this.finish(call, 'ended', call.accepted ? 'You ended the call.' : 'You cancelled the call.', 'hangup');
  }

  /**
   * The page is going away (reload, navigation, closed tab): we cannot tell which, so nothing is
   * ended. A call we are in — answered, or ringing out from here — gets `call.away`; the other
   * side shows "reconnecting" (or keeps ringing a little), and a reloaded tab rejoins. A call
   * ringing in here is left alone: other tabs, or this one reloaded, still ring.
   */
  leaveOnUnload() {
    const call = this.call;
    if (!call || call.over || call.incoming) return;
    if (!(call.inviteSignalId || call.role === 'callee')) return; // nothing was sent yet
    this.send('call.away', { call_id: call.id }, { call, keepalive: true }).catch(() => {});
  }

  toggleMute() {
    const call = this.call;
    if (!call || !call.localStream) return;
    call.muted = !call.muted;
    // A disabled audio track sends silence: the connection and its statistics stay alive.
    call.localStream.getAudioTracks().forEach((t) => (t.enabled = !call.muted));
    this.sendMediaState(call);
    this.update();
  }

  /**
   * Camera off stops sending video altogether (the sender's track becomes null: no black
   * frames) and releases the camera, so its light goes out; camera on opens it again on the
   * chosen device and puts the new track on the same sender.
   */
  async toggleCamera() {
    const call = this.call;
    if (!call || !call.localStream || call.cameraUnavailable || call.cameraSwitching) return;
    if (!call.cameraOff) {
      call.cameraOff = true;
      await this.replaceLocalTrack(call, 'video', null);
    } else {
      call.cameraSwitching = true;
      this.update();
      let track;
      try {
        track = await this.openDevice('camera');
      } catch (err) {
        console.warn(`[CallJS] Could not turn the camera on: ${err.name}`);
        this.onNotice(`Could not turn the camera on: ${cameraUnavailableReason(err)}`);
        return;
      } finally {
        call.cameraSwitching = false;
      }
      if (call.over) {
        track.stop();
        return;
      }
      call.cameraOff = false;
      await this.replaceLocalTrack(call, 'video', track);
    }
    console.log(`[CallJS] Camera ${call.cameraOff ? 'off' : 'on'}`);
    this.sendMediaState(call);
    this.update();
  }

  /** One track from the chosen `choice` ('camera' | 'mic'), or `deviceId` when given. */
  async openDevice(choice, deviceId) {
    const stream = await openMedia({ video: choice === 'camera', audio: choice === 'mic', [choice]: deviceId });
    return stream.getTracks()[0];
  }

  /**
   * Another camera or microphone during a call: the new track replaces the old one on its
   * sender (no renegotiation) and in the self-view. A camera that is off is only remembered
   * (devices.js), and used when it comes on.
   */
  async switchDevice(choice, deviceId) {
    const call = this.call;
    if (!call || call.over || !call.localStream) return;
    if (choice === 'camera' && (call.cameraOff || call.cameraUnavailable || call.cameraSwitching)) return;
    if (choice === 'camera') call.cameraSwitching = true;
    let track;
    try {
      track = await this.openDevice(choice, deviceId);
    } catch (err) {
      console.warn(`[CallJS] Could not switch the ${choice}: ${err.name}`);
      this.onNotice(`Could not switch to that ${choice === 'camera' ? 'camera' : 'microphone'} (${err.name}).`);
      return;
    } finally {
      if (choice === 'camera') call.cameraSwitching = false;
    }
    if (call.over || call !== this.call || (choice === 'camera' && call.cameraOff)) {
      track.stop();
      return;
    }
    if (track.kind === 'audio') track.enabled = !call.muted;
    await this.replaceLocalTrack(call, track.kind, track);
    console.log(`[CallJS] Switched the ${choice} to ${track.label || deviceId}`);
    this.update();
  }

  /** Puts `track` (or nothing) in place of our `kind` track: in the local stream and on the wire. */
  async replaceLocalTrack(call, kind, track) {
    const stream = call.localStream;
    for (const old of stream.getTracks().filter((t) => t.kind === kind)) {
      stream.removeTrack(old);
      old.stop();
    }
    if (track) stream.addTrack(track);
    const pc = call.pc;
    // Not yet on a connection: attachLocalTracks will add what the stream holds by then.
    if (!pc || pc.signalingState === 'closed' || !call.tracksAttached) return;
    const transceiver = transceiverFor(pc, kind);
    if (transceiver) {
      await transceiver.sender.replaceTrack(track);
      // A transceiver that only received so far (the call began without this track) must now
      // send too: that one change does need a negotiation (perfect negotiation runs it).
      if (track && !/send/.test(transceiver.direction)) {
        transceiver.direction = transceiver.direction === 'inactive' ? 'sendonly' : 'sendrecv';
      }
    } else if (track) {
      pc.addTrack(track, stream); // a first track of this kind: negotiated like any
    }
  }

  /** Tells the peer whether our microphone and camera are on (`call.media`). */
  sendMediaState(call) {
    if (!call || call.over || !call.accepted) return; // before the answer: sent once connected
    const video = Boolean(call.localStream && call.localStream.getVideoTracks().some((t) => t.readyState === 'live'));
    const payload = { call_id: call.id, audio: !call.muted, video: video && !call.cameraOff };
    this.send('call.media', payload, { call }).catch((err) =>
      console.warn(`[CallJS] Media state not sent: ${err.message}`),
    );
  }

  onPeerMedia(call, payload) {
    call.peerMedia = { audio: payload.audio !== false, video: payload.video !== false };
    console.log(`[CallJS] Peer media: audio ${call.peerMedia.audio ? 'on' : 'off'}, video ${call.peerMedia.video ? 'on' : 'off'}`);
    this.update();
  }

  /** A remote track's mute/unmute (no packets / packets again) redraws the placeholder. */
  watchRemoteTrack(call, track) {
    const redraw = () => {
      if (call === this.call && !call.over) this.update();
    };
    track.addEventListener('mute', redraw);
    track.addEventListener('unmute', redraw);
    track.addEventListener('ended', redraw);
  }

  /**
   * Samples the connection's quality every QUALITY_INTERVAL_MS while the call lasts (see
   * quality.js). It reads `call.pc` afresh each time, so a replaced connection is followed.
   */
  watchQuality(call) {
    if (call.timers.quality) return;
    let previous = null;
    const sample = async () => {
      if (call.over || !call.pc) return;
      try {
        const current = readStats(await call.pc.getStats());
        const quality = qualityBetween(previous, current);
        const stalled = Boolean(previous) && current.videoPackets <= previous.videoPackets;
        previous = current;
        const changed =
          !call.quality ||
          stalled !== call.remoteVideoStalled ||
          Object.keys(quality).some((k) => quality[k] !== call.quality[k]);
        call.quality = quality;
        call.remoteVideoStalled = stalled;
        if (changed && call === this.call) this.update();
      } catch (err) {
        console.warn(`[CallJS] Could not read the call statistics: ${err.message}`);
      }
    };
    sample();
    // setInterval's id lives with the timers: finish() clears it (clearTimeout clears intervals too).
    call.timers.quality = setInterval(sample, QUALITY_INTERVAL_MS);
  }

  /** Closes the call window after the call is over. */
  dismiss() {
    if (this.call && !this.call.over) return;
    this.call = null;
    this.update();
  }

  fail(call, reason, code = 'error') {
    this.finish(call, 'failed', reason, code);
  }

  /** Ends a call for good: timers, camera, connection. The window stays until dismissed. */
  finish(call, status, reason, code = '') {
    if (call.over) return;
    call.over = true;
    call.incoming = false;
    call.endedAt = Date.now();
    Object.values(call.timers).forEach((t) => clearTimeout(t));
    if (call.localStream) call.localStream.getTracks().forEach((t) => t.stop());
    if (call.pc) call.pc.close();
    this.lastCall = call;
    this.setStatus(call, status, reason, code, { final: true });
    if (call === this.call) this.update();
  }

  // ---- what the other side does ----------------------------------------------------------------

  handleReceipt(receipt) {
    const call = this.call;
    if (!call || call.over || !call.inviteSignalId || receipt.signal_id !== call.inviteSignalId) return;
    if (receipt.status === 'delivered') {
      this.inviteReached(call);
    } else if (receipt.status === 'expired' && !call.inviteDelivered) {
      this.unreachable(call, `${name(call.peer)} is not reachable: the call invite expired unread.`);
    }
  }

  inviteReached(call) {
    call.inviteDelivered = true;
    clearTimeout(call.timers.unreachable);
    if (call.status === 'calling' && !call.accepted) this.setStatus(call, 'ringing');
  }

  /** Processes one call signal, in seq order (the transport calls this once per signal). */
  async handleSignal(signal) {
    if (!isCallSignal(signal.type)) return;
    const payload = signal.payload || {};
    if (signal.type === 'call.invite') {
      await this.onInvite(signal, payload);
      return;
    }
    const call = this.call;
    if (!call || call.over || payload.call_id !== call.id || Number(signal.chat_id) !== call.chatId) {
      console.log(`[CallJS] Ignoring ${signal.type} of another call`);
      return;
    }
    if (signal.type === 'call.answered_elsewhere') {
      // From the server, to my other devices: someone else here answered or declined it.
      if (call.role === 'callee' && payload.device !== deviceId() && !call.connectedAt) {
        this.elsewhere(call, payload.outcome === 'declined' ? 'declined' : 'answered');
      }
      return;
    }
    if (signal.sender && signal.sender.id === this.me.id) return; // my own, from another tab
    // A call is between two devices: the other person's other tabs do not speak in it.
    if (call.peerDevice && payload.device && payload.device !== call.peerDevice) {
      console.log(`[CallJS] Ignoring ${signal.type} from another device of ${name(call.peer)}`);
      return;
    }
    if (signal.type.startsWith('webrtc.')) {
      // Meant for a connection of ours that a rejoin replaced (or a reload lost).
      if (payload.to_pc && call.pcId && payload.to_pc !== call.pcId) {
        console.log(`[CallJS] Ignoring ${signal.type} for a replaced connection`);
        return;
      }
      if (payload.pc && !call.remotePcId) call.remotePcId = payload.pc;
    }
    switch (signal.type) {
      case 'call.ringing':
        if (call.role === 'caller') this.inviteReached(call);
        break;
      case 'call.accept':
        if (call.role !== 'caller' || call.accepted) break;
        call.accepted = true;
        call.peerDevice = payload.device || null; // the answering device: the only one we hear
        call.remotePcId = payload.pc || null;
        this.inviteReached(call);
        clearTimeout(call.timers.ring);
        clearTimeout(call.timers.away);
        this.setStatus(call, 'connecting');
        this.armGiveUp(call);
        this.attachLocalTracks(call); // fires negotiationneeded: the offer
        break;
      case 'call.decline':
        if (payload.reason === 'busy') this.finish(call, 'ended', `${name(call.peer)} is in another call.`, 'busy');
        else if (payload.reason === 'media') this.finish(call, 'ended', `${name(call.peer)}’s camera and microphone are unavailable.`, 'media');
        else this.finish(call, 'ended', `${name(call.peer)} declined the call.`, 'declined');
        break;
      case 'call.cancel':
        if (call.incoming) {
          const code = payload.reason === 'no-answer' ? 'no-answer' : payload.reason === 'unreachable' ? 'offline' : 'cancelled';
          this.finish(call, 'ended', `Missed call from ${name(call.peer)}.`, code);
          this.dismiss();
          this.onNotice(`Missed call from ${name(call.peer)}.`);
        } else {
          this.finish(call, 'ended', `${name(call.peer)} hung up.`, 'hangup');
        }
        break;
      case 'call.end':
        if (payload.reason === 'connection-failed') {
          this.fail(call, connectionFailure(payload.cause, call.peer), 'connection-failed');
        } else {
          this.finish(call, 'ended', `${name(call.peer)} ended the call.`, 'hangup');
        }
        break;
      case 'call.away':
        this.peerAway(call);
        break;
      case 'call.rejoin':
        await this.peerRejoined(call, payload);
        break;
      case 'call.media':
        this.onPeerMedia(call, payload);
        break;
      case 'webrtc.offer':
      case 'webrtc.answer':
        if (payload.sdp) await this.handleDescription(call, payload.sdp);
        break;
      case 'webrtc.ice':
        if (payload.candidate) await this.handleCandidate(call, payload.candidate);
        break;
      default:
        break;
    }
  }

  /** The other side's page went away (a reload, most likely): wait for it, up to the grace. */
  peerAway(call) {
    console.log(`[CallJS] ${name(call.peer)} left the page; waiting for them to come back`);
    if (call.incoming) {
      // The caller left while it rang here; if they do not come back soon, it is a missed call.
      clearTimeout(call.timers.away);
      call.timers.away = setTimeout(() => {
        if (!call.incoming || call.over) return;
        this.finish(call, 'ended', `Missed call from ${name(call.peer)}.`, 'cancelled');
        this.dismiss();
        this.onNotice(`Missed call from ${name(call.peer)}.`);
      }, AWAY_RING_GRACE_MS);
      return;
    }
    if (!call.accepted) return; // ringing out: their reloaded tab shows the call again
    this.setStatus(call, 'reconnecting');
    this.armGiveUp(call);
  }

  /**
   * The other side reloaded and is back (`call.rejoin`). Its old connection is gone with the
   * page (DTLS state included), so ours is replaced by a new one that answers their fresh offer;
   * our camera and microphone stay on.
   */
  async peerRejoined(call, payload) {
    console.log(`[CallJS] ${name(call.peer)} rejoined the call`);
    clearTimeout(call.timers.away);
    if (payload.device && !call.peerDevice) call.peerDevice = payload.device;
    if (!call.accepted) return; // still ringing: nothing to rebuild
    call.remotePcId = payload.pc || null;
    const old = call.pc;
    call.pc = null;
    if (old) old.close();
    clearTimeout(call.timers.restart);
    call.timers.restart = null;
    Object.assign(call, {
      tracksAttached: false,
      pendingCandidates: [],
      earlyDescriptions: [],
      makingOffer: false,
      ignoreOffer: false,
      iceRestarts: 0,
      relayOnly: false,
      path: null,
    });
    this.setStatus(call, 'reconnecting');
    this.armGiveUp(call);
    // Their offer follows; addTrack happens when it arrives, so this side makes no offer of its own.
    await this.setupPeer(call);
  }

  // ---- after a reload: back into the call this tab was in --------------------------------------

  /**
   * `records` from GET /api/calls/active (newest first). An active call whose device on record
   * is this tab's is rejoined; a call ringing for me rings again; a call I placed from this tab
   * that still rings goes on ringing. Calls of my other devices are theirs.
   */
  async resume(records) {
    if (this.call && !this.call.over) return;
    const device = deviceId();
    for (const record of records || []) {
      const mine = record.caller.id === this.me.id;
      const peer = mine ? record.callee : record.caller;
      const myDevice = mine ? record.caller_device : record.answered_device;
      if (record.state === 'active' && myDevice === device) {
        await this.rejoin(record, peer, mine);
        return;
      }
      if (record.state === 'ringing' && !mine) {
        const signal = { chat_id: record.chat_id, sender: peer };
        await this.onInvite(signal, { call_id: record.call_id, device: record.caller_device, video: record.video });
        return;
      }
      if (record.state === 'ringing' && mine && record.caller_device === device) {
        await this.resumeRinging(record, peer);
        return;
      }
    }
  }

  resumedCall(record, peer, mine, status) {
    const call = this.newCall({ id: record.call_id, chat: record.chat_id, peer, role: mine ? 'caller' : 'callee', status });
    call.inviteSignalId = mine ? 'resumed' : null; // our invite went out before the reload
    call.inviteDelivered = true;
    call.clickedAt = Date.now();
    call.statusLog.push({ status, at: call.clickedAt });
    this.call = call;
    this.update();
    return call;
  }

  /** Rejoins an active call after a reload: new connection, media again, a fresh offer. */
  async rejoin(record, peer, mine) {
    console.log(`[CallJS] Rejoining call ${record.call_id} after a reload`);
    const call = this.resumedCall(record, peer, mine, 'reconnecting');
    call.accepted = true;
    call.incoming = false; // answered before the reload
    this.update();
    call.peerDevice = (mine ? record.answered_device : record.caller_device) || null;
    call.connectedAt = toMillis(record.answered_at) || Date.now(); // the call's clock goes on
    const tellMedia = () =>
      this.send('call.end', { call_id: call.id, reason: 'connection-failed', cause: 'media' }, { call }).catch(() => {});
    if (!(await this.acquireMedia(call, { onDenied: tellMedia }))) return;
    await this.setupPeer(call);
    if (call.over) return;
    this.armGiveUp(call);
    try {
      // Stored before the offer, so the other side has replaced its connection when it arrives.
      await this.send('call.rejoin', { call_id: call.id, pc: call.pcId }, { call });
    } catch (err) {
      console.warn(`[CallJS] call.rejoin not sent (${err.message}); the offer goes anyway`);
    }
    this.attachLocalTracks(call); // fires negotiationneeded: the fresh offer
  }

  /** A call I placed from this tab still rings after a reload: ring on until it is answered. */
  async resumeRinging(record, peer) {
    console.log(`[CallJS] Call ${record.call_id} still rings; resuming it after a reload`);
    const call = this.resumedCall(record, peer, true, 'ringing');
    if (!(await this.acquireMedia(call))) return;
    await this.setupPeer(call);
    if (call.over) return;
    const rang = Math.max(0, Date.now() - (toMillis(record.created_at) || Date.now()));
    call.timers.ring = setTimeout(() => this.ringTimedOut(call), Math.max(3000, this.config.ringTimeoutMs - rang));
    this.send('call.rejoin', { call_id: call.id, pc: call.pcId }, { call }).catch(() => {});
  }

  async onInvite(signal, payload) {
    const from = signal.sender;
    if (from && from.id === this.me.id) return; // my own call, placed from another tab
    const current = this.call;
    if (current && !current.over) {
      if (current.id === payload.call_id) return;
      const glare =
        current.role === 'caller' &&
        !current.accepted &&
        current.peer.id === from.id &&
        current.chatId === Number(signal.chat_id);
      if (glare && !current.polite) {
        console.log('[CallJS] Both called at once; keeping our call (impolite side)');
        return;
      }
      if (glare) {
        // Both called at once and we are the polite side: our call gives way to theirs, which
        // we answer at once (we wanted this call). Our own invite is ignored on their side.
        console.log('[CallJS] Both called at once; answering their call (polite side)');
        clearTimeout(current.timers.ring);
        clearTimeout(current.timers.unreachable);
        current.id = payload.call_id;
        current.peerDevice = payload.device || null;
        current.role = 'callee';
        current.inviteSignalId = null;
        current.accepted = true;
        this.setStatus(current, 'connecting');
        this.armGiveUp(current);
        this.send('call.accept', { call_id: current.id, pc: current.pcId }, { call: current }).catch((err) =>
          this.fail(current, `Could not answer the call: ${err.message}`, 'error'),
        );
        return;
      }
      // Already in another call: say so instead of ringing over it.
      const busy = { chatId: Number(signal.chat_id), peer: from };
      this.send('call.decline', { call_id: payload.call_id, reason: 'busy' }, { call: busy }).catch(() => {});
      return;
    }
    const call = this.newCall({ id: payload.call_id, chat: signal.chat_id, peer: from, role: 'callee', status: 'ringing' });
    call.peerDevice = payload.device || null; // the caller's device: the only one we hear
    call.statusLog.push({ status: 'ringing', at: Date.now() });
    this.call = call;
    // Tells the caller we ring, on every transport (receipts only reach push clients) — before
    // drawing the call window, so the caller hears the ringback as early as can be.
    this.send('call.ringing', { call_id: call.id }, { call }).catch(() => {});
    // The ICE servers load while it rings: an Accept then waits only for the camera.
    call.icePrefetch = this.loadIceServers(call);
    this.update();
    // Should the caller vanish without cancelling, stop ringing a little after it would have.
    call.timers.incoming = setTimeout(() => {
      if (call.incoming && !call.over) {
        this.finish(call, 'ended', `Missed call from ${name(from)}.`, 'no-answer');
        this.dismiss();
        this.onNotice(`Missed call from ${name(from)}.`);
      }
    }, Math.max(this.config.ringTimeoutMs, 30000) + INCOMING_GRACE_MS);
  }
}
