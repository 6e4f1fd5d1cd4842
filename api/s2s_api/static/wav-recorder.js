// A recorder for browsers whose MediaRecorder makes neither WebM/Opus nor Ogg/Opus (the formats
// the API takes from it; Safari records MP4/AAC): captures the microphone's samples with an
// audio worklet and encodes a 16-bit mono WAV. Same shape as a MediaRecorder where the page
// uses it: start(), stop() -> Promise<Blob>, mimeType.

export class WavRecorder {
  constructor(context, stream) {
    this.context = context;
    this.stream = stream;
    this.mimeType = "audio/wav";
    this.blocks = [];
    this.nodes = [];
  }

  async start() {
    await this.context.audioWorklet.addModule("/static/capture-worklet.js");
    const source = this.context.createMediaStreamSource(this.stream);
    const capture = new AudioWorkletNode(this.context, "capture");
    capture.port.onmessage = (event) => this.blocks.push(event.data);
    // A muted path to the output, so the graph is pulled and the worklet runs.
    const mute = this.context.createGain();
    mute.gain.value = 0;
    source.connect(capture).connect(mute).connect(this.context.destination);
    this.nodes = [source, capture, mute];
  }

  async stop() {
    // Let the last block arrive.
    await new Promise((resolve) => setTimeout(resolve, 60));
    for (const node of this.nodes) node.disconnect();
    this.nodes[1]?.port.close();
    return encodeWav(this.blocks, this.context.sampleRate);
  }
}

/** A 16-bit mono WAV Blob of Float32Array blocks. */
export function encodeWav(blocks, rate) {
  const frames = blocks.reduce((n, b) => n + b.length, 0);
  const view = new DataView(new ArrayBuffer(44 + frames * 2));
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + frames * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, frames * 2, true);
  let at = 44;
  for (const block of blocks) {
    for (let i = 0; i < block.length; i++, at += 2) {
      const s = Math.max(-1, Math.min(1, block[i]));
      view.setInt16(at, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
  }
  return new Blob([view], { type: "audio/wav" });
}
