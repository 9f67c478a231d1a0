// devices.js — which camera, microphone and speaker a call uses: the person's choice (kept in
// localStorage), the devices the browser lists, and the getUserMedia constraints made from them.
//
// A choice never fails a call: a camera that was unplugged since gives way to the default one.

const STORAGE_KEY = 'switchboard.devices';

/** Our names for the three choices, and the MediaDeviceInfo kind each lists. */
export const DEVICE_KINDS = {
  camera: { kind: 'videoinput', noun: 'Camera' },
  mic: { kind: 'audioinput', noun: 'Microphone' },
  speaker: { kind: 'audiooutput', noun: 'Speaker' },
};

/** The saved choices: `{camera, mic, speaker}`, each a deviceId or '' (the system default). */
export function devicePrefs() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || '{}');
    return { camera: saved.camera || '', mic: saved.mic || '', speaker: saved.speaker || '' };
  } catch {
    return { camera: '', mic: '', speaker: '' }; // storage disabled or garbled: the defaults
  }
}

export function saveDevicePref(choice, deviceId) {
  const prefs = { ...devicePrefs(), [choice]: deviceId || '' };
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(prefs));
  } catch {
    // Storage disabled: the choice holds for this page only.
  }
  return prefs;
}

/** Speaker choice needs HTMLMediaElement.setSinkId (Chromium, recent Firefox; not Safari). */
export function speakerChoiceSupported() {
  return typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
}

/**
 * getUserMedia on the chosen devices: `video` / `audio` say what is wanted, `camera` / `mic`
 * override the saved choice. A chosen device is asked for *exactly* — Chromium does not honour
 * `deviceId: {ideal}` when another camera fits its default resolution better — and when it is
 * gone (unplugged since, or its id changed) the request is made again on the default device, so
 * a stale choice never fails a call.
 */
export async function openMedia({ video = false, audio = false, camera, mic } = {}) {
  const prefs = devicePrefs();
  const cameraId = camera ?? prefs.camera;
  const micId = mic ?? prefs.mic;
  const pick = (wanted, deviceId) => (wanted ? (deviceId ? { deviceId: { exact: deviceId } } : true) : false);
  try {
    return await navigator.mediaDevices.getUserMedia({ video: pick(video, cameraId), audio: pick(audio, micId) });
  } catch (err) {
    const chose = (video && cameraId) || (audio && micId);
    if (!chose || !['OverconstrainedError', 'NotFoundError'].includes(err.name)) throw err;
    console.warn(`[CallJS] The chosen device is unavailable (${err.name}); using the default one`);
    return navigator.mediaDevices.getUserMedia({ video, audio });
  }
}

/**
 * The devices of each kind, `{camera: [{deviceId, label}], mic: […], speaker: […]}`. Before the
 * site may use the camera the browser hides labels (and often ids): such a device is called
 * "Camera 1", "Camera 2", … instead of an empty line.
 */
export async function listDevices() {
  const found = { camera: [], mic: [], speaker: [] };
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return found;
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [choice, { kind, noun }] of Object.entries(DEVICE_KINDS)) {
    const ofKind = devices.filter((d) => d.kind === kind && d.deviceId);
    found[choice] = ofKind.map((d, i) => ({ deviceId: d.deviceId, label: d.label || `${noun} ${i + 1}` }));
  }
  if (!speakerChoiceSupported()) found.speaker = [];
  return found;
}

/** Plays `element` on the chosen speaker; false when the browser cannot (or may not) do it. */
export async function applySpeaker(element, deviceId = devicePrefs().speaker) {
  if (!element || !speakerChoiceSupported()) return false;
  if ((element.sinkId || '') === (deviceId || '')) return true;
  try {
    await element.setSinkId(deviceId || '');
    return true;
  } catch (err) {
    // A speaker that is gone, or no permission yet: the default output keeps playing.
    console.warn(`[CallJS] Could not switch the speaker: ${err.name}`);
    return false;
  }
}
