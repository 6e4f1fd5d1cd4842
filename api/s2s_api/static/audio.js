// Plays a WAV that arrives as a stream (GET /v1/jobs/{id}/audio?stream=true): reads the header,
// then turns each piece of 16-bit PCM into an AudioBuffer and schedules it right after the last
// one, so the reply is heard while it is still being made.

const LEAD_S = 0.12; // head start for the first piece, and after any gap

export class StreamPlayer {
  constructor(context) {
    this.context = context;
    this.sources = new Set();
    this.nextAt = 0;
    this.stopped = false;
  }

  /** Reads `response`'s body to its end, scheduling the audio as it comes; resolves when all
   * of it is scheduled (not when it has finished playing). */
  async play(response) {
    const reader = response.body.getReader();
    let pending = new Uint8Array(0);
    let format = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (this.stopped) return;
        if (value) pending = concat(pending, value);
        if (!format) {
          const parsed = parseWavHeader(pending);
          if (parsed === "incomplete") {
            if (done) return;
            continue;
          }
          format = parsed;
          pending = pending.subarray(format.dataStart);
        }
        const frameBytes = 2 * format.channels;
        // Small pieces are gathered up to ~50 ms, so the scheduler is not fed crumbs.
        const enough = Math.ceil(format.rate * 0.05) * frameBytes;
        if (pending.length >= enough || (done && pending.length >= frameBytes)) {
          const usable = pending.length - (pending.length % frameBytes);
          this.schedule(pending.subarray(0, usable), format);
          pending = pending.slice(usable);
        }
        if (done) return;
      }
    } finally {
      reader.releaseLock();
    }
  }

  schedule(bytes, { rate, channels }) {
    const frames = bytes.length / (2 * channels);
    if (!frames) return;
    const buffer = this.context.createBuffer(channels, frames, rate);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    for (let c = 0; c < channels; c++) {
      const out = buffer.getChannelData(c);
      for (let i = 0; i < frames; i++) out[i] = view.getInt16((i * channels + c) * 2, true) / 32768;
    }
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const at = Math.max(this.nextAt, this.context.currentTime + LEAD_S);
    source.start(at);
    this.nextAt = at + buffer.duration;
    this.sources.add(source);
    source.onended = () => this.sources.delete(source);
  }

  stop() {
    this.stopped = true;
    for (const source of this.sources) {
      try {
        source.stop();
      } catch {
        // not started yet or already ended
      }
    }
    this.sources.clear();
  }
}

function concat(a, b) {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** {rate, channels, dataStart} of a 16-bit PCM WAV header, "incomplete" while more bytes are
 * needed; throws for anything else. */
export function parseWavHeader(bytes) {
  if (bytes.length < 12) return "incomplete";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const tag = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("the reply stream is not a WAV");
  let at = 12;
  let format = null;
  while (at + 8 <= bytes.length) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    if (id === "data") {
      if (!format) throw new Error("the reply stream has no format chunk");
      return { ...format, dataStart: at + 8 };
    }
    if (at + 8 + size > bytes.length) return "incomplete";
    if (id === "fmt ") {
      const bits = view.getUint16(at + 22, true);
      if (view.getUint16(at + 8, true) !== 1 || bits !== 16) {
        throw new Error("the reply stream is not 16-bit PCM");
      }
      format = { channels: view.getUint16(at + 10, true), rate: view.getUint32(at + 12, true) };
    }
    at += 8 + size + (size % 2);
  }
  return "incomplete";
}
