// quality.js — how good a call's connection is, from RTCPeerConnection.getStats(): the round-trip
// time of the selected candidate pair and the share of incoming packets lost (audio and video)
// since the last sample, classed as good / fair / poor.

export const QUALITY_INTERVAL_MS = 2000;

// Roughly where people start to notice: past ~150 ms of round trip speech overlaps, past ~2 %
// loss video smears; past ~400 ms / ~8 % a conversation becomes hard.
export const QUALITY_THRESHOLDS = {
  good: { rttMs: 150, lossPct: 2 },
  fair: { rttMs: 400, lossPct: 8 },
};

/** `good`, `fair` or `poor`; an unknown figure does not count against the connection. */
export function classifyQuality({ rttMs, lossPct }) {
  const within = ({ rttMs: maxRtt, lossPct: maxLoss }) =>
    (rttMs == null || rttMs < maxRtt) && (lossPct == null || lossPct < maxLoss);
  if (within(QUALITY_THRESHOLDS.good)) return 'good';
  if (within(QUALITY_THRESHOLDS.fair)) return 'fair';
  return 'poor';
}

/**
 * One reading of a stats report: `{rttMs, lost, received, videoPackets}` (counters since the
 * connection began; `videoPackets` tells whether any picture still arrives).
 */
export function readStats(stats) {
  let pair = null;
  let remoteRtt = null;
  let lost = 0;
  let received = 0;
  let videoPackets = 0;
  stats.forEach((report) => {
    if (report.type === 'transport' && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
    if (report.type === 'inbound-rtp') {
      lost += Math.max(0, report.packetsLost || 0);
      received += report.packetsReceived || 0;
      if (report.kind === 'video') videoPackets += report.packetsReceived || 0;
    }
    // The far side's receiver reports also carry a round trip: used when no pair says one.
    if (report.type === 'remote-inbound-rtp' && typeof report.roundTripTime === 'number') remoteRtt = report.roundTripTime;
  });
  if (!pair) {
    stats.forEach((report) => {
      if (report.type === 'candidate-pair' && report.nominated && report.state === 'succeeded') pair = report;
    });
  }
  const seconds = pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime : remoteRtt;
  return { rttMs: seconds == null ? null : Math.round(seconds * 1000), lost, received, videoPackets };
}

/**
 * The quality between two readings: loss is counted over the interval only, so an old burst
 * does not colour the indicator for the rest of the call. A counter that went down (a new peer
 * connection after a rejoin) starts the count afresh.
 */
export function qualityBetween(previous, current) {
  let lost = current.lost;
  let received = current.received;
  if (previous && current.lost >= previous.lost && current.received >= previous.received) {
    lost -= previous.lost;
    received -= previous.received;
  }
  const lossPct = lost + received > 0 ? Math.round((lost / (lost + received)) * 1000) / 10 : 0;
  const figures = { rttMs: current.rttMs, lossPct };
  return { level: classifyQuality(figures), ...figures };
}
