// call-events.js — what a call event message (`kind: "call"`, docs/CALLS.md) says to the person
// reading it. The server writes one per call, sent by the caller; the words depend on who reads:
// the caller's "No answer" is the callee's "Missed video call".

export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return `${minutes}:${seconds}`;
}

/**
 * `{text, outcome, outgoing, missed}` for a call event message, as seen by user `meId`.
 * `missed` marks what deserves attention (a call I did not pick up).
 */
export function describeCallEvent(message, meId) {
  const call = message.call || {};
  const outgoing = message.sender && message.sender.id === meId;
  const kind = call.video === false ? 'voice call' : 'video call';
  const Kind = kind[0].toUpperCase() + kind.slice(1);
  const outcome = call.outcome || 'ended';
  const duration = call.duration_ms ? formatDuration(call.duration_ms) : null;
  let text;
  let missed = false;
  switch (outcome) {
    case 'ended':
      text = duration ? `${Kind} · ${duration}` : Kind;
      break;
    case 'missed':
      if (outgoing) text = call.reason === 'cancelled' ? 'Cancelled call' : call.reason === 'offline' ? 'No answer (offline)' : 'No answer';
      else {
        text = `Missed ${kind}`;
        missed = true;
      }
      break;
    case 'declined':
      text = call.reason === 'media' ? 'Call failed: camera or microphone unavailable' : 'Declined';
      break;
    case 'busy':
      if (outgoing) text = 'Busy';
      else {
        text = `Missed ${kind} (you were in another call)`;
        missed = true;
      }
      break;
    case 'failed':
      text =
        call.reason === 'media'
          ? 'Call failed: camera or microphone unavailable'
          : duration
            ? `${Kind} · ${duration} · connection lost`
            : 'Call failed: could not connect';
      break;
    default:
      text = message.body || Kind;
  }
  return { text, outcome, outgoing, missed };
}

/** One line for the chat list: a call event summarised, or the message text. */
export function previewOf(message, meId) {
  if (!message) return '';
  if (message.kind === 'call') {
    const { text, outgoing } = describeCallEvent(message, meId);
    return `${outgoing ? '↗' : '↙'} ${text}`;
  }
  const mine = message.sender && message.sender.id === meId;
  return mine ? `You: ${message.body}` : message.body;
}
