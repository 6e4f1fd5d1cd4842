// Audio worklet of the WAV recorder (wav-recorder.js): hands each block of the first input
// channel to the page.
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel && channel.length) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor("capture", Capture);
