// ringer.js — everything that tells a person a call is ringing: the incoming ringtone and the
// caller's ringback (both synthesised with WebAudio, so there are no sound files to license), a
// desktop notification while the tab is hidden, a flashing title and, on phones, vibration.
//
// It holds no call logic of its own: `update(call)` is given the call state the call window
// renders and derives the one tone that fits (incoming → ringtone, caller hearing the callee's
// device ring → ringback, anything else → silence). Every cue therefore stops on the same render
// that shows the call answered, declined or cancelled, wherever that happened.

const FLASH_MS = 1000;
const BASE_TITLE = 'Switchboard';

/**
 * The two tones, as one repeating cycle of beeps. Each beep is `[start s, length s, [Hz…]]`
 * within `cycle` seconds. The ringback is the ETSI one most Europeans know (425 Hz, 1 s on),
 * with a 3 s pause rather than 4 s so a caller hears it again sooner; the ringtone is a two-note
 * warble, brighter and clearly different, so nobody mistakes their own ringback for a call.
 */
const TONES = {
  ringback: { cycle: 4, gain: 0.12, beeps: [[0, 1, [425]]] },
  ringtone: {
    cycle: 3,
    gain: 0.16,
    beeps: [
      [0, 0.4, [660, 880]],
      [0.5, 0.4, [660, 880]],
    ],
  },
};
const VIBRATE_PATTERN = [400, 200, 400]; // once per ringtone cycle
const RAMP_S = 0.02; // a short attack and release: an instant on/off clicks in the speaker

export class Ringer {
  constructor({ focusApp = () => window.focus() } = {}) {
    this.focusApp = focusApp;
    this.context = null; // AudioContext, made on the first gesture (or ring) that allows it
    this.analyser = null;
    this.tone = null;
    this.playing = null; // {oscillators, envelope, timer} of the tone being played
    this.flashTimer = null;
    this.flashText = '';
    this.baseTitle = BASE_TITLE;
    this.vibrateTimer = null;
    this.notification = null;
    this.call = null;
    this.peerName = '';

    // Browsers keep an AudioContext suspended until the page has had a user gesture. Signing in
    // is one, so a ring that comes later can be heard; any later gesture also unlocks it.
    const unlock = () => this.unlockAudio();
    document.addEventListener('pointerdown', unlock, { capture: true });
    document.addEventListener('keydown', unlock, { capture: true });
    // A tab hidden while it rings still deserves a notification; a tab that comes back to the
    // front shows the call window, so the notification has done its job.
    document.addEventListener('visibilitychange', () => this.syncNotification());
  }

  /** What a test (or a person at the console) can read: which cues are on right now. */
  get state() {
    return {
      tone: this.tone,
      notifying: Boolean(this.notification),
      titleFlashing: Boolean(this.flashTimer),
      vibrating: Boolean(this.vibrateTimer),
      audioState: this.context ? this.context.state : null,
    };
  }

  /** The tone's current peak amplitude (0…1) as it leaves for the speakers; 0 when silent. */
  level() {
    if (!this.analyser) return 0;
    const samples = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(samples);
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s));
    return peak;
  }

  /** Derives the cues from the call window's state (null: no call). */
  update(call, peerName = '') {
    const ringing = Boolean(call && !call.over);
    const tone = !ringing
      ? null
      : call.incoming
        ? 'ringtone'
        : call.role === 'caller' && call.status === 'ringing'
          ? 'ringback'
          : null;
    this.call = tone ? call : null;
    this.peerName = peerName;
    if (tone === this.tone) return;
    this.stopAll();
    this.tone = tone;
    if (!tone) return;
    this.startTone(tone);
    if (tone === 'ringtone') {
      this.startFlashing(`📞 ${peerName} is calling…`);
      this.startVibrating();
      this.syncNotification();
    }
  }

  // ---- sound ----------------------------------------------------------------------------------

  ensureContext() {
    if (this.context) return this.context;
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!AudioContextClass) return null;
    try {
      this.context = new AudioContextClass();
    } catch {
      return null; // no audio device at all: the other cues still work
    }
    // Everything goes through one analyser, so `level()` measures what is really sent out.
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 2048;
    this.analyser.connect(this.context.destination);
    return this.context;
  }

  unlockAudio() {
    const context = this.ensureContext();
    if (context && context.state === 'suspended') context.resume().catch(() => {});
  }

  startTone(name) {
    const context = this.ensureContext();
    if (!context) return;
    // Without a gesture yet this may stay suspended; the tone starts as soon as one comes.
    if (context.state === 'suspended') context.resume().catch(() => {});
    const tone = TONES[name];
    const envelope = context.createGain();
    envelope.gain.value = 0;
    envelope.connect(this.analyser);
    const frequencies = [...new Set(tone.beeps.flatMap(([, , hz]) => hz))];
    // One oscillator per frequency, running all along; the envelope gates each beep.
    const oscillators = frequencies.map((hz) => {
      const oscillator = context.createOscillator();
      oscillator.type = 'sine';
      oscillator.frequency.value = hz;
      const voice = context.createGain();
      voice.gain.value = 0;
      oscillator.connect(voice).connect(envelope);
      oscillator.start();
      return { hz, voice, oscillator };
    });
    const playing = { oscillators, envelope, timer: null };
    // Each cycle is scheduled on the audio clock when it starts: timers may drift, beeps do not.
    const scheduleCycle = () => {
      const t0 = context.currentTime + 0.05;
      for (const [start, length, hzs] of tone.beeps) {
        const on = t0 + start;
        const off = on + length;
        for (const { hz, voice } of oscillators) {
          if (!hzs.includes(hz)) continue;
          voice.gain.setValueAtTime(0, on);
          voice.gain.linearRampToValueAtTime(tone.gain / hzs.length, on + RAMP_S);
          voice.gain.setValueAtTime(tone.gain / hzs.length, off - RAMP_S);
          voice.gain.linearRampToValueAtTime(0, off);
        }
      }
      envelope.gain.setValueAtTime(1, t0);
    };
    scheduleCycle();
    playing.timer = setInterval(scheduleCycle, tone.cycle * 1000);
    this.playing = playing;
  }

  stopTone() {
    const playing = this.playing;
    this.playing = null;
    if (!playing) return;
    clearInterval(playing.timer);
    // Silence now, not at the end of the beep: the call was answered.
    playing.envelope.gain.cancelScheduledValues(0);
    playing.envelope.gain.value = 0;
    playing.envelope.disconnect();
    for (const { voice, oscillator } of playing.oscillators) {
      oscillator.stop();
      voice.disconnect();
    }
  }

  // ---- title, vibration, notification ------------------------------------------------------------

  startFlashing(text) {
    this.flashText = text;
    let showCall = false;
    const flash = () => {
      // Someone else (e.g. an unread count) may have set the title meanwhile: that is the base.
      if (document.title !== this.flashText) this.baseTitle = document.title || BASE_TITLE;
      showCall = !showCall;
      document.title = showCall ? this.flashText : this.baseTitle;
    };
    flash();
    this.flashTimer = setInterval(flash, FLASH_MS);
  }

  stopFlashing() {
    if (!this.flashTimer) return;
    clearInterval(this.flashTimer);
    this.flashTimer = null;
    if (document.title === this.flashText) document.title = this.baseTitle;
  }

  startVibrating() {
    if (typeof navigator.vibrate !== 'function') return;
    const pulse = () => {
      try {
        navigator.vibrate(VIBRATE_PATTERN);
      } catch {
        // Refused (e.g. no user activation yet): the sound and the title remain.
      }
    };
    pulse();
    this.vibrateTimer = setInterval(pulse, TONES.ringtone.cycle * 1000);
  }

  stopVibrating() {
    if (!this.vibrateTimer) return;
    clearInterval(this.vibrateTimer);
    this.vibrateTimer = null;
    try {
      navigator.vibrate(0);
    } catch {
      // nothing to stop
    }
  }

  /** Shows the notification while a call rings in a hidden tab, and closes it otherwise. */
  syncNotification() {
    const wanted = this.tone === 'ringtone' && document.hidden && notificationsAllowed();
    if (wanted && !this.notification) {
      const call = this.call;
      try {
        const notification = new Notification(`${this.peerName} is calling…`, {
          body: 'Incoming video call on Switchboard. Click to answer.',
          tag: `switchboard-call-${call ? call.id : ''}`,
          requireInteraction: true,
          icon: '/static/favicon.svg',
        });
        notification.onclick = () => {
          this.focusApp();
          notification.close();
        };
        this.notification = notification;
      } catch {
        // Some browsers only allow notifications from a service worker: the title still flashes.
      }
    } else if (!wanted && this.notification) {
      this.notification.close();
      this.notification = null;
    }
  }

  stopAll() {
    this.stopTone();
    this.stopFlashing();
    this.stopVibrating();
    this.tone = null;
    this.syncNotification();
  }
}

export function notificationsAllowed() {
  return typeof Notification === 'function' && Notification.permission === 'granted';
}

/**
 * The "Get notified of calls" button: shown while the browser has not been asked yet, and asking
 * only when clicked (browsers ignore, and people dislike, a permission prompt nobody asked for).
 */
export function bindNotificationPrompt(button) {
  const refresh = () => {
    button.hidden = typeof Notification !== 'function' || Notification.permission !== 'default';
  };
  button.addEventListener('click', async () => {
    try {
      await Notification.requestPermission();
    } catch {
      // An old callback-only implementation or a refusal: either way the button state follows.
    }
    refresh();
  });
  refresh();
}
