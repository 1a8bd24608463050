// The client's counters, exposed as window.voiceStats for tests and for debugging from the
// console. Every module updates this one object in place.

export const stats = {
  state: "idle",
  sessionId: null,
  framesSent: 0,
  bytesSent: 0,
  audioChunksReceived: 0,
  audioBytesReceived: 0,
  buffersScheduled: 0,
  buffersPlayed: 0,
  buffersActive: 0, // scheduled or playing right now
  secondsScheduled: 0,
  underruns: 0,
  framesDropped: 0,
  interruptions: 0,
  turnsCompleted: 0,
  speechStarts: 0,
  ducks: 0,
  resumes: 0,
  checkIns: 0,
  playedReports: 0,
  gain: 1,
  errors: [],
};
window.voiceStats = stats;
