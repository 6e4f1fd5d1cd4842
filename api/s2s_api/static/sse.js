// Server-Sent Events read with fetch(), so that requests can carry an Authorization header
// (EventSource cannot). Parses the stream as the HTML standard says: `event`, `data` (lines
// joined with "\n"), `id`; comments (": keep-alive") and `retry` are skipped.

const LINE_END = /\r\n|\n|\r/;

/** Yields {type, data, id} for each event of a fetch() Response whose body is text/event-stream. */
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "";
  let data = [];
  let id = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const end = LINE_END.exec(buffer);
        // A lone "\r" at the end may be the first half of "\r\n": wait for the next piece.
        if (!end || (end[0] === "\r" && end.index === buffer.length - 1)) break;
        const line = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        if (line === "") {
          if (data.length) yield { type: type || "message", data: data.join("\n"), id };
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") type = text;
        else if (field === "data") data.push(text);
        else if (field === "id" && !text.includes("\0")) id = text;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
