// device-panel.js — the "Camera, microphone and speaker" dialog: one <dialog> opened from the
// sidebar's gear button and from the call window's Devices button (so there is one set of
// selects). A choice is saved at once (devices.js) and handed to `onChoose`, which applies it
// to a running call. Outside a call the panel shows a small live preview of the chosen camera;
// in a call the preview is the call's own camera, so nothing opens it twice.

import { DEVICE_KINDS, devicePrefs, listDevices, openMedia, saveDevicePref } from './devices.js';

export class DevicePanel {
  /**
   * `dialog`: the <dialog>; `callStream()`: the running call's local stream, or null;
   * `onChoose(choice, deviceId)`: a choice was made ('camera' | 'mic' | 'speaker').
   */
  constructor({ dialog, callStream, onChoose }) {
    this.dialog = dialog;
    this.callStream = callStream;
    this.onChoose = onChoose;
    this.preview = dialog.querySelector('[data-testid="device-preview"]');
    this.note = dialog.querySelector('.device-note');
    this.previewStream = null;
    this.selects = {};
    for (const choice of Object.keys(DEVICE_KINDS)) {
      const select = dialog.querySelector(`[data-testid="${choice}-select"]`);
      this.selects[choice] = select;
      select.addEventListener('change', () => this.choose(choice, select.value));
    }
    dialog.addEventListener('close', () => this.stopPreview());
    // Escape closes this dialog only, not the call window behind it.
    dialog.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') event.stopPropagation();
    });
    navigator.mediaDevices?.addEventListener?.('devicechange', () => {
      if (dialog.open) this.fill();
    });
  }

  async open() {
    if (!this.dialog.open) this.dialog.showModal();
    this.note.textContent = '';
    // The preview first: once the camera may be used, the browser tells the devices' names.
    await this.startPreview();
    await this.fill();
  }

  async fill() {
    let devices;
    try {
      devices = await listDevices();
    } catch (err) {
      this.note.textContent = `Could not list your devices: ${err.message}`;
      return;
    }
    const prefs = devicePrefs();
    for (const [choice, select] of Object.entries(this.selects)) {
      const options = [new Option('System default', '')];
      for (const device of devices[choice]) options.push(new Option(device.label, device.deviceId));
      select.replaceChildren(...options);
      // A saved device that is not plugged in shows as the default (and is still preferred).
      select.value = devices[choice].some((d) => d.deviceId === prefs[choice]) ? prefs[choice] : '';
      // Speaker choice only where the browser can route audio (setSinkId).
      select.closest('.field').hidden = choice === 'speaker' && devices.speaker.length === 0;
    }
  }

  choose(choice, deviceId) {
    saveDevicePref(choice, deviceId);
    if (choice === 'camera') this.startPreview();
    this.onChoose(choice, deviceId);
  }

  async startPreview() {
    const callStream = this.callStream();
    if (callStream) {
      this.stopPreview();
      this.preview.srcObject = callStream;
      this.preview.hidden = callStream.getVideoTracks().length === 0;
      this.preview.play().catch(() => {}); // autoplay alone may wait for a frame that came before
      return;
    }
    this.stopPreview();
    if (!navigator.mediaDevices?.getUserMedia) return;
    try {
      const stream = await openMedia({ video: true });
      if (!this.dialog.open) {
        stream.getTracks().forEach((t) => t.stop());
        return;
      }
      this.previewStream = stream;
      this.preview.srcObject = stream;
      this.preview.hidden = false;
      this.preview.play().catch(() => {});
    } catch (err) {
      this.note.textContent = 'No camera preview: the camera is unavailable or not allowed.';
    }
  }

  stopPreview() {
    if (this.previewStream) this.previewStream.getTracks().forEach((t) => t.stop());
    this.previewStream = null;
    this.preview.srcObject = null;
    this.preview.hidden = true;
  }
}
