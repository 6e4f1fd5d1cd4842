// The page: record (or pick a file), send it as a job, follow the job's events, show the
// transcript and reply as they come, play the reply while it is made, then keep the whole reply
// in the player; later recordings continue the same conversation.
//
// Every API call carries the key the user entered (sessionStorage, this tab only). Events are
// read with fetch() rather than EventSource, which cannot send an Authorization header.

import { StreamPlayer } from "./audio.js";
import { readEvents } from "./sse.js";
import { WavRecorder } from "./wav-recorder.js";

const $ = (id) => document.getElementById(id);
const ui = {
  keyForm: $("key-form"),
  key: $("api-key"),
  record: $("record"),
  stop: $("stop"),
  file: $("file"),
  voice: $("voice"),
  autoplay: $("autoplay"),
  levelRow: $("level-row"),
  level: $("level"),
  elapsed: $("elapsed"),
  stages: [...document.querySelectorAll(".stages li")],
  status: $("status"),
  transcript: $("transcript"),
  reply: $("reply"),
  player: $("player"),
  turns: $("turns"),
  noTurns: $("conv-empty"),
  newConversation: $("new-conversation"),
};

const STORE = {
  key: "s2s.apiKey", // sessionStorage: gone when the tab closes
  conversation: "s2s.conversation", // sessionStorage
  voice: "s2s.voice", // localStorage: a preference, not a secret
  autoplay: "s2s.autoplay", // localStorage
};
// The API refuses recordings over MAX_AUDIO_SECONDS (120 s by default): stop a little before.
const MAX_RECORD_S = 115;
// What the API takes from MediaRecorder, best first (Chromium records WebM/Opus, Firefox both).
const RECORDER_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus"];
const STAGE_INDEX = { uploading: 0, queued: 1, transcribing: 1, generating: 2, synthesizing: 3, completed: 4 };
const FAILED_STAGE_INDEX = { stt: 1, llm: 2, tts: 3 };
const STAGE_NAMES = { stt: "transcribing", llm: "writing the reply", tts: "speaking the reply" };
const STATUS_TEXT = {
  queued: "Waiting for the speech recognizer…",
  transcribing: "Transcribing what you said…",
  generating: "Writing the reply…",
  synthesizing: "Speaking the reply…",
};

let conversationId = sessionStorage.getItem(STORE.conversation);
let audioContext = null;
let recording = null; // {recorder, stream, source, started, timer, frame}
let turn = null; // the turn being followed: {controller, live}
let busy = false;
let playerUrl = null;

// ------------------------------------------------------------------ talking to the API

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function authHeaders() {
  const key = ui.key.value.trim();
  if (!key) return {};
  if (!/^[\x21-\x7e]+$/.test(key)) {
    throw new ApiError(0, "the API key may only hold printable ASCII characters, without spaces");
  }
  return { Authorization: `Bearer ${key}` };
}

/** fetch() with the key; an answer that is not a success becomes an ApiError with its `detail`. */
async function api(path, options = {}) {
  const headers = { ...authHeaders(), ...(options.headers || {}) };
  let response;
  try {
    response = await fetch(path, { ...options, headers, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "the service cannot be reached; check the connection and try again");
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

async function problemOf(response) {
  let detail = `the service answered ${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, detail);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });
}

// ------------------------------------------------------------------ what the user sees

function setStatus(text, kind = "") {
  ui.status.textContent = text;
  ui.status.className = `status ${kind}`.trim();
}

function keyNeeded(detail) {
  ui.key.setAttribute("aria-invalid", "true");
  const what = ui.key.value.trim()
    ? "The API key was not accepted: enter the service's key above"
    : "This service needs an API key: enter it above";
  setStatus(`${what} (the service said: ${detail}).`, "error");
}

function showError(err) {
  if (err?.name === "AbortError") return;
  console.error(err);
  const detail = err instanceof ApiError ? err.message : String(err?.message || err);
  if (err instanceof ApiError && err.status === 401) keyNeeded(detail);
  else setStatus(`Error: ${detail}`, "error");
}

function setStage(name, failedStage = null) {
  let index = name ? STAGE_INDEX[name] ?? -1 : -1;
  const failed = name === "failed";
  if (failed) index = FAILED_STAGE_INDEX[failedStage] ?? 0;
  ui.stages.forEach((li, i) => {
    const done = name === "completed" ? i <= index : i < index;
    li.classList.toggle("done", done);
    li.classList.toggle("current", !failed && !done && i === index);
    li.classList.toggle("failed", failed && i === index);
    if (i === index && !done) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  });
}

function setBusy(value) {
  busy = value;
  ui.record.disabled = value || recording !== null || !canRecord();
  ui.file.disabled = value || recording !== null;
  ui.voice.disabled = value;
}

function clearTurnView() {
  ui.transcript.textContent = "";
  ui.reply.textContent = "";
  setPlayerBlob(null);
  setStage(null);
}

function setPlayerBlob(blob) {
  ui.player.pause();
  if (playerUrl) URL.revokeObjectURL(playerUrl);
  playerUrl = blob ? URL.createObjectURL(blob) : null;
  if (playerUrl) ui.player.src = playerUrl;
  else ui.player.removeAttribute("src");
  ui.player.load();
}

function showJob(job) {
  if (job.transcript != null) ui.transcript.textContent = job.transcript;
  if (job.reply != null) ui.reply.textContent = job.reply;
  showStatus(job.status);
}

function showStatus(status) {
  setStage(status);
  if (STATUS_TEXT[status]) setStatus(STATUS_TEXT[status]);
}

function appendReply(text) {
  const now = ui.reply.textContent;
  ui.reply.textContent = now ? `${now} ${text}` : text;
}

// ------------------------------------------------------------------ audio out

function context() {
  // Made (or resumed) while handling a click, so the browser lets it play.
  if (!audioContext) audioContext = new AudioContext();
  if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
  return audioContext;
}

function stopPlayback() {
  turn?.live?.stop();
  ui.player.pause();
}

async function streamReply(jobId, current) {
  const live = new StreamPlayer(context());
  current.live = live;
  try {
    const response = await api(`/v1/jobs/${jobId}/audio?stream=true`, { signal: current.controller.signal });
    await live.play(response);
  } catch (err) {
    // The whole reply still comes to the player when the job completes.
    if (err.name !== "AbortError") console.warn("live reply audio:", err);
  }
}

async function loadReply(jobId, signal) {
  const response = await api(`/v1/jobs/${jobId}/audio`, { signal });
  setPlayerBlob(await response.blob());
}

// ------------------------------------------------------------------ a turn

/** The job's events until it ends; reconnects with Last-Event-ID when a stream drops. */
async function follow(jobId, signal) {
  let lastId = null;
  let failures = 0;
  for (;;) {
    try {
      const headers = lastId ? { "Last-Event-ID": lastId } : {};
      const response = await api(`/v1/jobs/${jobId}/events`, { headers, signal });
      for await (const event of readEvents(response)) {
        if (event.id) lastId = event.id;
        failures = 0;
        const data = JSON.parse(event.data);
        switch (event.type) {
          case "snapshot":
            showJob(data);
            break;
          case "status":
            showStatus(data.status);
            break;
          case "transcript":
            ui.transcript.textContent = data.text;
            break;
          case "reply.delta":
            appendReply(data.text);
            break;
          case "completed":
          case "failed":
            showJob(data);
            return data;
          default:
            break; // audio.chunk, and whatever a later version adds
        }
      }
    } catch (err) {
      const final = err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429;
      if (err.name === "AbortError" || final) throw err;
      failures += 1;
      if (failures > 5) {
        throw err instanceof ApiError ? err : new ApiError(0, "the connection to the service was lost");
      }
    }
    // The stream ended before the job did (a dropped connection, or its 10 min cap): go on.
    await sleep(1000 * Math.min(failures + 1, 5), signal);
  }
}

function uploadForm(blob, filename, withConversation) {
  const form = new FormData();
  form.append("audio", blob, filename);
  if (withConversation && conversationId) form.append("conversation_id", conversationId);
  if (ui.voice.value) form.append("voice", ui.voice.value);
  return form;
}

async function send(blob, filename) {
  if (busy) return;
  setBusy(true);
  stopPlayback();
  turn?.controller.abort();
  const current = { controller: new AbortController(), live: null };
  turn = current;
  const { signal } = current.controller;
  clearTurnView();
  setStage("uploading");
  setStatus("Sending the recording…");
  try {
    let response;
    try {
      response = await api("/v1/jobs", { method: "POST", body: uploadForm(blob, filename, true), signal });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404 && conversationId)) throw err;
      // The conversation expired or was deleted: this recording starts a new one.
      setConversation(null);
      response = await api("/v1/jobs", { method: "POST", body: uploadForm(blob, filename, false), signal });
    }
    const job = await response.json();
    setConversation(job.conversation_id || null);
    showJob(job);
    if (ui.autoplay.checked) streamReply(job.id, current);
    const end = await follow(job.id, signal);
    if (end.status === "completed") {
      setStage("completed");
      await loadReply(end.id, signal);
      const t = end.timings || {};
      const took = t.total_s != null ? ` in ${t.total_s.toFixed(1)} s` : "";
      const first = t.first_audio_s != null ? ` (first audio after ${t.first_audio_s.toFixed(1)} s)` : "";
      setStatus(`Completed${took}${first}.`, "done");
    } else {
      const error = end.error || {};
      setStage("failed", error.stage);
      const where = STAGE_NAMES[error.stage] ? ` while ${STAGE_NAMES[error.stage]}` : "";
      setStatus(`Failed${where}: ${error.message || "unknown error"}`, "error");
    }
    await refreshTurns();
  } catch (err) {
    if (err?.name !== "AbortError") {
      setStage("failed", null);
      showError(err);
    }
  } finally {
    if (turn === current) {
      setBusy(false);
      if (document.activeElement === document.body || document.activeElement?.disabled) ui.record.focus();
    }
  }
}

// ------------------------------------------------------------------ recording

function canRecord() {
  return Boolean(window.isSecureContext && navigator.mediaDevices?.getUserMedia);
}

function recorderType() {
  if (new URLSearchParams(location.search).get("recorder") === "wav") return null;
  if (typeof MediaRecorder === "undefined") return null;
  return RECORDER_TYPES.find((type) => MediaRecorder.isTypeSupported(type)) || null;
}

function micError(err) {
  if (err?.name === "NotAllowedError") return "The microphone was not allowed; allow it, or send a file.";
  if (err?.name === "NotFoundError") return "No microphone was found; send a file instead.";
  return `The microphone could not be opened (${err?.message || err}); send a file instead.`;
}

async function startRecording() {
  if (busy || recording) return;
  const ctx = context();
  stopPlayback();
  ui.record.disabled = true;
  ui.file.disabled = true;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    setBusy(false);
    setStatus(micError(err), "error");
    return;
  }
  try {
    const type = recorderType();
    let recorder;
    if (type) {
      const chunks = [];
      const media = new MediaRecorder(stream, { mimeType: type });
      const stopped = new Promise((resolve) => {
        media.onstop = resolve;
      });
      media.ondataavailable = (event) => {
        if (event.data.size) chunks.push(event.data);
      };
      media.start(250);
      recorder = {
        stop: async () => {
          media.stop();
          await stopped;
          return new Blob(chunks, { type: media.mimeType || type });
        },
      };
    } else {
      recorder = new WavRecorder(ctx, stream);
      await recorder.start();
    }
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    recording = { recorder, stream, source, started: performance.now(), timer: 0, frame: 0 };
    const samples = new Float32Array(analyser.fftSize);
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      ui.level.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      if (recording) recording.frame = requestAnimationFrame(draw);
    };
    recording.frame = requestAnimationFrame(draw);
    recording.timer = setInterval(() => {
      const seconds = (performance.now() - recording.started) / 1000;
      ui.elapsed.textContent = `${Math.floor(seconds)} s`;
      if (seconds >= MAX_RECORD_S) stopRecording().catch(showError);
    }, 250);
  } catch (err) {
    for (const track of stream.getTracks()) track.stop();
    recording = null;
    setBusy(false);
    setStatus(`The recording could not start (${err?.message || err}).`, "error");
    return;
  }
  document.body.classList.add("recording");
  ui.elapsed.textContent = "0 s";
  ui.levelRow.hidden = false;
  ui.stop.disabled = false;
  ui.stop.focus();
  setStage(null);
  setStatus("Recording… press Stop and send when you are done.");
}

async function stopRecording() {
  const r = recording;
  if (!r) return;
  recording = null;
  clearInterval(r.timer);
  cancelAnimationFrame(r.frame);
  ui.stop.disabled = true;
  ui.levelRow.hidden = true;
  document.body.classList.remove("recording");
  let blob;
  try {
    blob = await r.recorder.stop();
  } catch (err) {
    setBusy(false);
    throw err;
  } finally {
    r.source.disconnect();
    for (const track of r.stream.getTracks()) track.stop();
  }
  const ext = blob.type.includes("ogg") ? "ogg" : blob.type.includes("wav") ? "wav" : "webm";
  await send(blob, `recording.${ext}`);
}

// ------------------------------------------------------------------ conversation and voices

function setConversation(id) {
  conversationId = id;
  if (id) sessionStorage.setItem(STORE.conversation, id);
  else sessionStorage.removeItem(STORE.conversation);
}

async function refreshTurns() {
  if (!conversationId) {
    renderTurns([]);
    return;
  }
  try {
    const response = await api(`/v1/conversations/${encodeURIComponent(conversationId)}`);
    renderTurns((await response.json()).turns);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setConversation(null);
      renderTurns([]);
      setStatus("The earlier conversation has expired; the next recording starts a new one.");
    } else {
      showError(err);
    }
  }
}

function renderTurns(turns) {
  ui.turns.replaceChildren(...turns.map(turnItem));
  ui.noTurns.hidden = turns.length > 0;
}

function turnItem(t, i) {
  const li = document.createElement("li");
  const said = (who, cls, text) => {
    const p = document.createElement("p");
    p.className = cls;
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    p.append(label, text);
    return p;
  };
  li.append(said("You", "you", t.transcript ?? "…"));
  li.append(said("Assistant", "bot", t.reply ?? (t.status === "failed" ? "(failed)" : "…")));
  const meta = document.createElement("div");
  meta.className = "meta";
  const when = document.createElement("span");
  const at = new Date(t.created_at);
  when.textContent = `Turn ${i + 1} · ${Number.isNaN(at.valueOf()) ? "" : at.toLocaleTimeString()}`;
  meta.append(when);
  if (t.audio_url) {
    const play = document.createElement("button");
    play.type = "button";
    play.textContent = "Play";
    play.setAttribute("aria-label", `Play the reply of turn ${i + 1}`);
    play.addEventListener("click", () => playTurn(t.audio_url));
    meta.append(play);
  }
  li.append(meta);
  return li;
}

async function playTurn(url) {
  stopPlayback();
  try {
    const response = await api(url);
    setPlayerBlob(await response.blob());
    await ui.player.play();
  } catch (err) {
    showError(err);
  }
}

function newConversation() {
  stopPlayback();
  turn?.controller.abort();
  turn = null;
  setConversation(null);
  clearTurnView();
  renderTurns([]);
  setBusy(false);
  setStatus("New conversation: record or send a file to begin.");
}

let voicesRetry = 0;
let voicesTries = 0;

async function loadVoices() {
  clearTimeout(voicesRetry);
  try {
    const offer = await (await api("/v1/voices")).json();
    const wanted = ui.voice.value || localStorage.getItem(STORE.voice) || "";
    const options = [new Option(`Default (${offer.default})`, "")];
    for (const v of offer.voices) options.push(new Option(v.cloned ? `${v.name} (yours)` : v.name, v.name));
    ui.voice.replaceChildren(...options);
    ui.voice.value = options.some((o) => o.value === wanted) ? wanted : "";
    ui.key.removeAttribute("aria-invalid");
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      keyNeeded(err.message);
    } else if (err instanceof ApiError && err.status === 503 && voicesTries < 60) {
      voicesTries += 1; // no TTS worker has said which voices it has yet: ask again, for 5 min
      voicesRetry = setTimeout(loadVoices, 5000);
    } else {
      showError(err);
    }
    return false;
  }
}

async function useKey() {
  sessionStorage.setItem(STORE.key, ui.key.value.trim());
  if ((await loadVoices()) && !busy) {
    setStatus("Ready.");
    await refreshTurns();
  }
}

// ------------------------------------------------------------------ wiring

ui.key.value = sessionStorage.getItem(STORE.key) || "";
ui.autoplay.checked = localStorage.getItem(STORE.autoplay) !== "off";

ui.key.addEventListener("input", () => sessionStorage.setItem(STORE.key, ui.key.value.trim()));
ui.key.addEventListener("change", useKey);
ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  useKey();
});
ui.record.addEventListener("click", startRecording);
ui.stop.addEventListener("click", () => stopRecording().catch(showError));
ui.file.addEventListener("click", () => context());
ui.file.addEventListener("change", () => {
  const file = ui.file.files[0];
  ui.file.value = ""; // the same file can be sent again
  if (file) send(file, file.name || "recording");
});
ui.voice.addEventListener("change", () => localStorage.setItem(STORE.voice, ui.voice.value));
ui.autoplay.addEventListener("change", () => {
  localStorage.setItem(STORE.autoplay, ui.autoplay.checked ? "on" : "off");
  if (!ui.autoplay.checked) turn?.live?.stop();
});
ui.newConversation.addEventListener("click", newConversation);

setBusy(false);
if (!canRecord()) {
  setStatus("Recording needs https (or localhost) and a browser that allows it; you can still send a file.");
}
loadVoices().then((ok) => {
  if (ok) refreshTurns();
});
