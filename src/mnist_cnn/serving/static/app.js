// The draw-a-digit page: strokes on a canvas -> PNG upload to POST /predict -> bars + the 28x28 input.
// Number mode: a wider canvas -> POST /read -> the number, each digit boxed on the drawing.
// Plain JS, no build step, no network beyond this server. The server does all preprocessing,
// so the page sends exactly what was drawn (black ink on white) and shows what the model saw.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const bars = document.getElementById("bars");
const predicted = document.getElementById("predicted");
const confidence = document.getElementById("confidence");
const statusLine = document.getElementById("status");
const verdict = document.getElementById("verdict");
const numberMode = document.getElementById("number-mode");
const boxes = document.getElementById("boxes").getContext("2d");
const numberOut = document.getElementById("number");
const numberVerdict = document.getElementById("number-verdict");
const numberStatus = document.getElementById("number-status");
const digitList = document.getElementById("digits");
const DIGIT_SIDE = 280; // one digit's canvas; number mode doubles the width for several

// MNIST strokes are ~2.5 px in a 20-px box: 19 px here matches a digit drawn 150-190 px tall
// (thinner relative strokes are thickened by the server's preprocessing, thicker ones are not thinned).
const STROKE_WIDTH = Math.round(pad.height / 15);
const LIVE_INTERVAL_MS = 150; // while drawing, at most one request per interval

let strokes = []; // each stroke: [[x, y], ...] in canvas pixels; undo pops the last
let current = null;
let classes = [];
let requestSeq = 0; // only the newest answer is shown
let lastSent = 0;

function clearCanvas() {
  ctx.fillStyle = "#fff"; // opaque white: the upload is an ordinary black-on-white PNG
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function drawStroke(points) {
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = STROKE_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (points.length === 1) { // a dot
    ctx.beginPath();
    ctx.arc(points[0][0], points[0][1], STROKE_WIDTH / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function redraw() {
  clearCanvas();
  strokes.forEach(drawStroke);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  current = [point(event)];
  strokes.push(current);
  drawStroke(current);
});

pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of (events.length ? events : [event])) current.push(point(e));
  redraw();
  if (performance.now() - lastSent > LIVE_INTERVAL_MS) predictCanvas();
});

function endStroke() {
  if (!current) return;
  current = null;
  predictCanvas();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("undo").addEventListener("click", () => {
  strokes.pop();
  redraw();
  strokes.length ? predictCanvas() : resetResult();
});

document.getElementById("clear").addEventListener("click", () => {
  strokes = [];
  redraw();
  resetResult();
});

document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) sendFile(file, file.name);
  event.target.value = ""; // choosing the same file again still fires
});

// At most one request in flight: while one is out, only the newest wish is remembered
// (the drawing as it will be then, or an uploaded file), and sent when the answer is in.
// A busy server thus answers the latest strokes instead of a queue of stale ones.
let inFlight = false;
let waiting = null; // null, "canvas", or [file, name]

function predictCanvas() {
  if (!strokes.length) return;
  if (inFlight) { waiting = "canvas"; return; }
  inFlight = true;
  lastSent = performance.now();
  pad.toBlob((blob) => send(blob, "drawing.png"), "image/png");
}

function sendFile(file, name) {
  if (inFlight) { waiting = [file, name]; return; }
  inFlight = true;
  send(file, name);
}

function sendWaiting() {
  inFlight = false;
  const next = waiting;
  waiting = null;
  if (next === "canvas") predictCanvas();
  else if (next) sendFile(...next);
}

async function send(blob, name) {
  try {
    await request(blob, name);
  } finally {
    sendWaiting();
  }
}

async function request(blob, name) {
  const seq = ++requestSeq;
  const reading = numberMode.checked; // the mode this request was made in
  const status = reading ? numberStatus : statusLine;
  const form = new FormData();
  form.append("file", blob, name);
  let response, body;
  try {
    const url = reading ? "/read" : "/predict?top_k=" + Math.max(classes.length, 1);
    response = await fetch(url, { method: "POST", body: form });
    body = await response.json();
  } catch (error) {
    if (seq === requestSeq) status.textContent = "the server did not answer: " + error;
    return;
  }
  if (seq !== requestSeq) return; // a newer drawing is on its way
  if (!response.ok) {
    status.textContent = body.detail || "error " + response.status;
    return;
  }
  status.textContent = "";
  // Boxes are in the sent image's pixels: they fit the drawing, not an uploaded photo.
  reading ? showNumber(body, name === "drawing.png") : showResult(body);
}

function verdictText(body) {
  // Written by the server in the browser's language (its Accept-Language header): a calibrated
  // rule's reason, or, for a model without one, the plain checks' (a filled area is no digit).
  return body.accepted ? "" : body.reason;
}

function showNumber(body, onDrawing) {
  numberOut.textContent = body.number;
  numberOut.dataset.count = body.digits.length;
  numberVerdict.textContent = verdictText(body);
  boxes.clearRect(0, 0, boxes.canvas.width, boxes.canvas.height);
  boxes.font = "bold 16px system-ui, sans-serif";
  digitList.replaceChildren(...body.digits.map((digit) => {
    const { x, y, width, height } = digit.box;
    if (onDrawing) {
      boxes.strokeStyle = boxes.fillStyle = digit.accepted ? "#2a9d4b" : "#c77d00";
      boxes.lineWidth = 2;
      boxes.strokeRect(x - 3, y - 3, width + 6, height + 6);
      boxes.fillText(digit.class, x, Math.max(16, y - 6));
    }
    const li = document.createElement("li");
    li.classList.toggle("refused", !digit.accepted);
    li.title = digit.reason || "";
    li.innerHTML = '<span class="class"></span><canvas width="28" height="28"></canvas><span class="value"></span>';
    li.querySelector(".class").textContent = digit.class;
    li.querySelector(".value").textContent = (100 * digit.probability).toFixed(1) + "%";
    const small = li.querySelector("canvas").getContext("2d");
    const pixels = small.createImageData(28, 28);
    digit.image.flat().forEach((v, i) => pixels.data.set([v, v, v, 255], 4 * i));
    small.putImageData(pixels, 0, 0);
    return li;
  }));
}

numberMode.addEventListener("change", () => {
  const width = numberMode.checked ? 2 * DIGIT_SIDE : DIGIT_SIDE;
  pad.width = boxes.canvas.width = width; // resizing a canvas clears it
  document.body.classList.toggle("number-mode", numberMode.checked);
  document.getElementById("digit-result").hidden = numberMode.checked;
  document.getElementById("number-result").hidden = !numberMode.checked;
  document.getElementById("hint").textContent = numberMode.checked
    ? "Write a number as you would on paper (digits may touch); each digit is boxed where it was read."
    : "Draw one digit, large, in the middle. Fashion-MNIST model? Upload a photo instead.";
  strokes = [];
  redraw();
  resetResult();
});

function buildBars() {
  bars.replaceChildren(...classes.map((name, i) => {
    const li = document.createElement("li");
    li.dataset.index = i;
    li.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="value">–</span>';
    li.querySelector(".name").textContent = name;
    return li;
  }));
}

function resetResult() {
  requestSeq++;
  predicted.textContent = "–";
  predicted.dataset.index = "";
  confidence.textContent = "";
  statusLine.textContent = "";
  verdict.textContent = "";
  numberOut.textContent = "–";
  numberOut.dataset.count = "";
  numberVerdict.textContent = numberStatus.textContent = "";
  digitList.replaceChildren();
  boxes.clearRect(0, 0, boxes.canvas.width, boxes.canvas.height);
  buildBars();
  seen.fillStyle = "#000";
  seen.fillRect(0, 0, 28, 28);
}

function showResult(body) {
  predicted.textContent = body.predicted;
  predicted.dataset.index = body.index;
  confidence.textContent = "(" + (100 * body.probability).toFixed(1) + "%)";
  predicted.dataset.accepted = body.accepted;
  verdict.textContent = verdictText(body);
  body.probabilities.forEach((p, i) => {
    const li = bars.children[i];
    if (!li) return;
    li.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
    li.querySelector(".value").textContent = (100 * p).toFixed(1) + "%";
    li.classList.toggle("best", i === body.index);
  });
  const pixels = seen.createImageData(28, 28);
  body.image.flat().forEach((v, i) => {
    pixels.data.set([v, v, v, 255], 4 * i);
  });
  seen.putImageData(pixels, 0, 0);
}

async function loadModel() {
  const info = document.getElementById("model-info");
  try {
    const model = await (await fetch("/model")).json();
    classes = model.classes;
    const accuracy = model.test_metrics && model.test_metrics.accuracy;
    info.textContent = `${model.name} (${model.dataset || "unknown dataset"}, ${model.parameters.toLocaleString()} parameters` +
      (accuracy ? `, test accuracy ${(100 * accuracy).toFixed(2)}%)` : ")");
  } catch (error) {
    info.textContent = "cannot reach the server: " + error;
  }
  resetResult();
  document.body.dataset.ready = "true"; // tests wait for this
}

clearCanvas();
loadModel();
