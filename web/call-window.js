// call-window.js — how the call window behaves around the call it shows: where focus goes in
// each state, what Escape means (decline / "Hang up?" / close), the spoken status updates, the
// minimized tile and picture-in-picture, and closing by itself after a call you ended.
//
// app.js's renderCall() draws the call; it then hands the same call object to `render()` here.

import { ModalDialog } from './dialog.js';

const $ = (selector) => document.querySelector(selector);
const testId = (id) => document.querySelector(`[data-testid="${id}"]`);

/** incoming → the person is deciding; active → a call is being set up or is on; over → ended. */
function phaseOf(call) {
  if (!call) return null;
  if (call.over) return 'over';
  return call.incoming ? 'incoming' : 'active';
}

/** What a screen reader hears when the call changes state (null: nothing new to say). */
function announcementFor(call, peerName) {
  if (call.over) {
    const prefix = call.status === 'failed' ? 'Call failed' : 'Call ended';
    return call.reason ? `${prefix}: ${call.reason}` : `${prefix}.`;
  }
  if (call.incoming) return `Incoming video call from ${peerName}`;
  switch (call.status) {
    case 'calling':
      return `Calling ${peerName}`;
    case 'ringing':
      return `Ringing ${peerName}`;
    case 'connecting':
      return 'Connecting';
    case 'connected':
      return 'Connected';
    case 'reconnecting':
      return 'Connection interrupted, reconnecting';
    default:
      return call.reason || call.status;
  }
}

export class CallWindow {
  /** `calls()` returns the CallManager (it is replaced on each sign-in). */
  constructor({ calls, config }) {
    this.calls = calls;
    this.config = config;
    this.modal = $('#call-modal');
    this.announcer = $('#call-announcer');
    this.confirmBox = $('#hangup-confirm');
    this.remoteVideo = $('#remote-video');
    this.dialog = new ModalDialog(this.modal, {
      keepLive: [$('#call-announcer'), $('#toasts'), $('#device-panel')],
      onEscape: () => this.escape(),
    });
    this.call = null;
    this.peerName = '';
    this.phase = null;
    this.minimized = false;
    this.endedByMe = null; // the id of the call this person ended (hang up or decline)
    this.closeTimer = null;
    this.lastAnnouncement = '';
    this.bind();
  }

  bind() {
    // A call this person ends closes by itself; one the other side ended stays with its reason.
    // Capture phase: the mark must be set before app.js's own click handler ends the call.
    const markMine = () => {
      if (this.call) this.endedByMe = this.call.id;
    };
    testId('hangup').addEventListener('click', markMine, { capture: true });
    testId('decline-call').addEventListener('click', markMine, { capture: true });
    testId('call-minimize').addEventListener('click', () => this.setMinimized(true));
    testId('call-expand').addEventListener('click', () => this.setMinimized(false));
    testId('call-pip').addEventListener('click', () => this.togglePictureInPicture());
    testId('confirm-hangup').addEventListener('click', () => {
      this.hideConfirm(false);
      markMine();
      this.calls().hangup();
    });
    testId('cancel-hangup').addEventListener('click', () => this.hideConfirm(true));
    this.remoteVideo.addEventListener('enterpictureinpicture', () => this.renderPipButton());
    this.remoteVideo.addEventListener('leavepictureinpicture', () => this.renderPipButton());
  }

  render(call, peerName = '') {
    const previous = this.call;
    this.call = call;
    this.peerName = peerName;
    // The same object stays for a whole call (even when glare changes its id); a new one is a
    // new call, which starts expanded and is announced afresh.
    if (call !== previous) {
      this.reset();
      if (call) this.lastAnnouncement = '';
    }
    if (!call) {
      this.dialog.close();
      return;
    }
    const phase = phaseOf(call);
    const phaseChanged = phase !== this.phase;
    this.phase = phase;
    if (phase !== 'active') this.hideConfirm(false);
    // A call that ends while minimized comes back into view with its reason, unless this person
    // ended it (then the tile just says so and goes away).
    if (phase === 'over' && this.minimized && this.endedByMe !== call.id) this.minimized = false;

    this.modal.classList.toggle('minimized', this.minimized);
    testId('call-minimize').hidden = phase !== 'active' || this.minimized;
    testId('call-expand').hidden = !this.minimized;
    this.renderPipButton();
    this.dialog.open({ modal: !this.minimized });
    if (!this.minimized) {
      if (phaseChanged) this.dialog.focus(this.preferredFocus());
      else this.dialog.keepFocusInside(this.preferredFocus());
    }

    this.announce(announcementFor(call, peerName));
    if (phase === 'over' && this.endedByMe === call.id) this.closeSoon(call);
    if (phase === 'over' && document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
  }

  reset() {
    clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.phase = null;
    this.minimized = false;
    this.modal.classList.remove('minimized');
    this.hideConfirm(false);
  }

  /** The control a person most likely wants next, in the current state. */
  preferredFocus() {
    if (this.phase === 'incoming') return testId('accept-call');
    if (this.phase === 'over') {
      const again = testId('call-again');
      return again && !again.hidden ? again : testId('call-close');
    }
    return testId('hangup');
  }

  escape() {
    const calls = this.calls();
    if (!calls || !this.call) return;
    if (this.phase === 'incoming') {
      this.endedByMe = this.call.id;
      calls.decline();
    } else if (this.phase === 'active') {
      if (this.confirmBox.hidden) this.showConfirm();
      else this.hideConfirm(true);
    } else {
      calls.dismiss();
    }
  }

  showConfirm() {
    this.confirmBox.hidden = false;
    this.dialog.setScope(this.confirmBox);
    this.dialog.focus(testId('confirm-hangup'));
  }

  hideConfirm(refocus) {
    if (this.confirmBox.hidden) return;
    this.confirmBox.hidden = true;
    this.dialog.setScope(null);
    if (refocus) this.dialog.focus(testId('hangup'));
  }

  setMinimized(minimized) {
    if (!this.call || this.minimized === minimized) return;
    this.minimized = minimized;
    this.hideConfirm(false);
    this.render(this.call, this.peerName);
    if (minimized) {
      // Back to the chat, where the person was before the call window opened.
      if (!this.dialog.restoreFocus()) testId('call-expand').focus();
    } else {
      this.dialog.focus(this.preferredFocus());
    }
  }

  closeSoon(call) {
    if (this.closeTimer) return;
    this.closeTimer = setTimeout(() => {
      this.closeTimer = null;
      const calls = this.calls();
      if (calls && calls.call === call) calls.dismiss();
    }, this.config.endedCloseMs);
  }

  announce(text) {
    if (!text || text === this.lastAnnouncement) return;
    this.lastAnnouncement = text;
    this.announcer.textContent = text;
  }

  renderPipButton() {
    const button = testId('call-pip');
    const call = this.call;
    const supported = document.pictureInPictureEnabled && !this.remoteVideo.disablePictureInPicture;
    button.hidden = !supported || !call || call.over || !call.remoteStream;
    const active = document.pictureInPictureElement === this.remoteVideo;
    button.setAttribute('aria-pressed', String(active));
    button.setAttribute('aria-label', active ? 'Exit picture-in-picture' : 'Picture-in-picture');
  }

  async togglePictureInPicture() {
    try {
      if (document.pictureInPictureElement) await document.exitPictureInPicture();
      else await this.remoteVideo.requestPictureInPicture();
    } catch (err) {
      console.warn(`[CallJS] Picture-in-picture: ${err.message}`);
    }
    this.renderPipButton();
  }
}
