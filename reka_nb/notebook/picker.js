// The upload panel's picker: a plain ES module that anywidget loads as the widget's `_esm`.
//
// Images come from the file dialog, a drop (files or folders), a paste (Ctrl/Cmd+V while the
// picker has focus) or the camera. Photos larger than `max_side` on their long side are
// downscaled here with a canvas (EXIF orientation applied) unless "Keep originals" is ticked;
// smaller files are sent byte for byte. Bytes go to the kernel as binary buffers in custom
// messages of at most `chunk_bytes`, each acknowledged before the next, so no message meets
// Jupyter's websocket limit and no image is ever put in the widget's synced (saved) state.
// The kernel says its limits (bytes per image, per part) when the picker says it is ready,
// answers each file of a choice with whether it was used, and sends the chosen images'
// thumbnails as buffers too, so they are drawn here and never saved with the notebook.

const IMAGE_NAME = /\.(avif|bmp|gif|heic|heif|jpe?g|png|tiff?|webp)$/i;
// Formats that may have transparency: downscaled to PNG. Everything else becomes a JPEG.
const MAY_BE_TRANSPARENT = new Set(["image/png", "image/gif", "image/webp", "image/avif"]);
const ACK_TIMEOUT = 60000; // ms to wait for the kernel to acknowledge one part
const DEFAULT_LIMITS = { max_bytes: 20 * 1048576, chunk_bytes: 1048576 }; // until the kernel says

function listed(names, shown = 4) {
  // As the kernel's chooser words it: "2 images: a.jpg, b.png" or "a.jpg".
  const more = names.length > shown ? ` and ${names.length - shown} more` : "";
  const count = names.length > 1 ? `${names.length} images: ` : "";
  return `${count}${names.slice(0, shown).join(", ")}${more}`;
}

function sizeText(bytes) {
  for (const [unit, scale] of [["MB", 1048576], ["KB", 1024]]) {
    if (bytes >= scale) return `${(bytes / scale).toFixed(1).replace(/\.0$/, "")} ${unit}`;
  }
  return `${bytes} bytes`;
}

function isImage(file) {
  return file.type ? file.type.startsWith("image/") : IMAGE_NAME.test(file.name);
}

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// -- reading what the user gave ---------------------------------------------------------------

function readEntry(entry) {
  // The image files under a dropped folder (or the one dropped file), in name order.
  if (entry.isFile) return new Promise((ok) => entry.file(ok, () => ok(null)));
  if (!entry.isDirectory) return Promise.resolve(null);
  const reader = entry.createReader();
  const all = [];
  return new Promise((ok) => {
    const next = () =>
      reader.readEntries(async (entries) => {
        if (entries.length === 0) {
          all.sort((a, b) => a.name.localeCompare(b.name));
          const files = (await Promise.all(all.map(readEntry))).flat();
          ok(files.flat().filter((f) => f && isImage(f)));
          return;
        }
        all.push(...entries);
        next();
      }, () => ok([]));
    next();
  });
}

function droppedFiles(dataTransfer) {
  // Read synchronously (the DataTransfer empties once the event is over), resolve later.
  const pending = [];
  for (const item of Array.from(dataTransfer.items || [])) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry && entry.isDirectory) pending.push(readEntry(entry));
    else pending.push(Promise.resolve(item.getAsFile()));
  }
  if (pending.length === 0) {
    for (const file of Array.from(dataTransfer.files || [])) pending.push(Promise.resolve(file));
  }
  return Promise.all(pending).then((lists) => lists.flat().filter(Boolean));
}

// -- downscaling --------------------------------------------------------------------------------

async function prepare(file, model) {
  // {blob, downscaled, width, height}: the bytes to send for one file.
  const maxSide = model.get("max_side");
  if (model.get("keep_originals") || !maxSide) return { blob: file, downscaled: false };
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return { blob: file, downscaled: false }; // the kernel reads what the browser cannot
  }
  const { width, height } = bitmap;
  if (Math.max(width, height) <= maxSide) {
    bitmap.close();
    return { blob: file, downscaled: false, width, height };
  }
  const scale = maxSide / Math.max(width, height);
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  const canvas = element("canvas", { width: w, height: h });
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(bitmap, 0, 0, w, h);
  bitmap.close();
  const type = MAY_BE_TRANSPARENT.has(file.type) ? "image/png" : "image/jpeg";
  const blob = await new Promise((ok) => canvas.toBlob(ok, type, model.get("jpeg_quality")));
  canvas.width = canvas.height = 0; // free the pixels now
  if (!blob) return { blob: file, downscaled: false };
  return { blob, downscaled: true, width: w, height: h };
}

// -- the widget ---------------------------------------------------------------------------------

function render({ model, el }) {
  let batchCount = 0;
  let limits = { ...DEFAULT_LIMITS };
  const waiting = new Map(); // "batch/file/offset" -> resolve, for acknowledgements
  const shownRows = new Map(); // batch -> the rows of the files it sent, by index
  const refusedBatches = new Map(); // batch -> why the kernel refused it
  let thumbURLs = [];

  const fileInput = element("input", {
    type: "file", multiple: true, accept: "image/*", hidden: true, tabIndex: -1,
  });
  const captureInput = element("input", {
    type: "file", accept: "image/*", capture: "environment", hidden: true, tabIndex: -1,
  });
  const choose = element("button", { type: "button", class: "reka-picker-choose" }, [
    "Choose images…",
  ]);
  const camera = element("button", { type: "button", class: "reka-picker-camera" }, ["Camera"]);
  const keep = element("input", { type: "checkbox", class: "reka-picker-keep" });
  const keepLabel = element("label", { class: "reka-picker-option" }, [
    keep, " Keep originals (send photos at full size)",
  ]);
  const hint = element("span", { class: "reka-picker-hint" }, [
    "or drop images here, or paste one with Ctrl+V",
  ]);
  const chosen = element("div", { class: "reka-picker-chosen", role: "status" });
  const files = element("ul", { class: "reka-picker-files" });
  const thumbs = element("div", { class: "reka-picker-thumbs" });
  const video = element("video", { class: "reka-picker-video", muted: true, playsInline: true });
  const snap = element("button", { type: "button", class: "reka-picker-snap" }, ["Take photo"]);
  const cancel = element("button", { type: "button", class: "reka-picker-cancel" }, ["Cancel"]);
  const cameraBox = element("div", { class: "reka-picker-camera-box", hidden: true }, [
    video, element("div", { class: "reka-picker-row" }, [snap, cancel]),
  ]);
  const zone = element("div", {
    class: "reka-picker-zone", tabIndex: 0, role: "group",
    "aria-label": "Images: choose, drop or paste",
  }, [
    element("div", { class: "reka-picker-row" }, [choose, camera, hint]),
    element("div", { class: "reka-picker-row reka-picker-options" }, [keepLabel]),
    cameraBox, chosen, files,
  ]);
  el.classList.add("reka-picker");
  el.append(zone, thumbs, fileInput, captureInput);

  keep.checked = model.get("keep_originals");
  keep.addEventListener("change", () => {
    model.set("keep_originals", keep.checked);
    model.save_changes();
  });
  const onKeep = () => { keep.checked = model.get("keep_originals"); };
  model.on("change:keep_originals", onKeep);
  const onLabel = () => { chosen.textContent = model.get("chosen_text"); };
  model.on("change:chosen_text", onLabel);
  onLabel();

  // -- talking to the kernel ---------------------------------------------------------------------

  const onMessage = (msg, buffers) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.kind === "ack") {
      const key = `${msg.batch}/${msg.file}/${msg.offset}`;
      const resolve = waiting.get(key);
      if (resolve) { waiting.delete(key); resolve(msg); }
    } else if (msg.kind === "refused" && msg.batch !== undefined) {
      // The kernel refused the whole choice (too much at once, or it stopped arriving).
      refusedBatches.set(msg.batch, msg.error);
      for (const [key, resolve] of waiting) {
        if (key.startsWith(`${msg.batch}/`)) { waiting.delete(key); resolve({ error: msg.error }); }
      }
    } else if (msg.kind === "limits") {
      limits = { max_bytes: msg.max_bytes, chunk_bytes: msg.chunk_bytes };
    } else if (msg.kind === "outcome") {
      const rows = shownRows.get(msg.batch) || [];
      shownRows.delete(msg.batch);
      for (const { file, used, note } of msg.files || []) {
        if (!used && rows[file]) refuse(rows[file], note || "not used");
      }
    } else if (msg.kind === "thumbnails") {
      showThumbnails(msg.items || [], buffers || []);
    }
  };
  model.on("msg:custom", onMessage);

  function acknowledged(batch, file, offset) {
    return new Promise((ok, fail) => {
      if (refusedBatches.has(batch)) {
        ok({ error: refusedBatches.get(batch) });
        return;
      }
      const key = `${batch}/${file}/${offset}`;
      const timer = setTimeout(() => {
        waiting.delete(key);
        fail(new Error("the kernel did not answer (is it busy or stopped?)"));
      }, ACK_TIMEOUT);
      waiting.set(key, (msg) => { clearTimeout(timer); ok(msg); });
    });
  }

  function row(name) {
    const bar = element("progress", { max: 1, value: 0 });
    const note = element("span", { class: "reka-picker-note" }, ["waiting"]);
    const label = element("span", { class: "reka-picker-name", title: name }, [name]);
    const item = element("li", {}, [label, bar, note]);
    files.append(item);
    return { item, bar, note };
  }

  function refuse(shown, why) {
    // Mark a file that was not used where it is listed, saying why.
    shown.item.classList.add("reka-picker-refused");
    shown.bar.hidden = true;
    shown.note.textContent = `not used: ${why}`;
    shown.note.title = why;
  }

  function showThumbnails(items, buffers) {
    for (const url of thumbURLs) URL.revokeObjectURL(url);
    thumbURLs = [];
    let next = 0;
    const figures = items.map(({ name, mime, has_image }) => {
      const box = element("div", { class: "reka-picker-thumb-box" });
      if (has_image && next < buffers.length) {
        const data = buffers[next++];
        const bytes = ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : data;
        const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
        thumbURLs.push(url);
        box.append(element("img", { src: url, alt: name, title: name }));
      }
      const caption = element("figcaption", { title: name }, [name]);
      return element("figure", { class: "reka-picker-thumb" }, [box, caption]);
    });
    thumbs.replaceChildren(...figures);
  }

  async function send(given, how, batch) {
    const maxBytes = limits.max_bytes;
    const chunk = limits.chunk_bytes;
    files.replaceChildren();
    const refused = [];
    const ready = [];
    for (const file of given) {
      const shown = row(file.name);
      if (!isImage(file)) {
        const why = `${file.name} is not an image (its type is ${file.type || "unknown"}), so it was not used.`;
        refused.push(why);
        refuse(shown, `not an image (${file.type || "unknown type"})`);
        continue;
      }
      shown.note.textContent = "preparing";
      let prepared;
      try {
        prepared = await prepare(file, model);
      } catch (error) {
        const why = `${file.name} could not be read by the browser (${error.message}), so it was not used.`;
        refused.push(why);
        refuse(shown, `the browser could not read it (${error.message})`);
        continue;
      }
      model.send({ kind: "preparing", batch });
      if (prepared.blob.size > maxBytes) {
        const why = `${file.name} is ${sizeText(prepared.blob.size)}${prepared.downscaled ? " after downscaling" : ""}, larger than this panel's limit of ${sizeText(maxBytes)} per image, so it was not used.`;
        refused.push(why);
        refuse(shown, `${sizeText(prepared.blob.size)}, above the limit of ${sizeText(maxBytes)}`);
        continue;
      }
      ready.push({ file, prepared, shown });
    }
    shownRows.set(batch, ready.map(({ shown }) => shown));
    const described = ready.map(({ file, prepared }) => ({
      name: file.name,
      type: prepared.blob.type || file.type,
      size: prepared.blob.size,
      original_size: file.size,
      downscaled: prepared.downscaled,
    }));
    model.send({ kind: "begin", batch, how, files: described, refused });
    try {
      for (const [index, { prepared, shown }] of ready.entries()) {
        const { blob } = prepared;
        const original = ready[index].file.size;
        shown.note.textContent = prepared.downscaled
          ? `${sizeText(blob.size)}, downscaled from ${sizeText(original)}`
          : sizeText(blob.size);
        for (let offset = 0; offset < blob.size || (offset === 0 && blob.size === 0); offset += chunk) {
          const part = await blob.slice(offset, offset + chunk).arrayBuffer();
          const ack = acknowledged(batch, index, offset);
          model.send({ kind: "part", batch, file: index, offset }, undefined, [part]);
          const answer = await ack;
          if (answer.error) throw new Error(answer.error);
          shown.bar.value = blob.size ? Math.min(1, (offset + part.byteLength) / blob.size) : 1;
          if (blob.size === 0) break;
        }
        shown.bar.value = 1;
      }
      model.send({ kind: "end", batch });
    } catch (error) {
      shownRows.delete(batch);
      for (const { shown } of ready) if (shown.bar.value < 1) refuse(shown, error.message);
      model.send({ kind: "failed", batch, message: error.message });
    }
  }

  let queue = Promise.resolve();
  const enqueue = (given, how) => {
    if (given.length === 0) return;
    // Say at once what is on its way: the kernel holds Describe back until it has arrived.
    const batch = `${Date.now().toString(36)}-${++batchCount}`;
    const names = given.map((file) => file.name);
    chosen.textContent = `Preparing: ${listed(names)}…`;
    model.send({ kind: "choosing", batch, how, names });
    queue = queue.then(() => send(given, how, batch)).catch((error) => console.error(error));
  };

  // -- where images come from --------------------------------------------------------------------

  choose.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    enqueue(Array.from(fileInput.files || []), "replace");
    fileInput.value = "";
  });
  captureInput.addEventListener("change", () => {
    enqueue(Array.from(captureInput.files || []), "add");
    captureInput.value = "";
  });

  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("reka-picker-over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("reka-picker-over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    event.stopPropagation(); // JupyterLab would otherwise open the file
    zone.classList.remove("reka-picker-over");
    droppedFiles(event.dataTransfer).then((given) => enqueue(given, "replace"));
  });
  zone.addEventListener("paste", (event) => {
    const given = Array.from(event.clipboardData?.files || []).filter(isImage);
    if (given.length === 0) return; // let text paste where it would
    event.preventDefault();
    event.stopPropagation();
    enqueue(given, "add");
  });

  let stream = null;
  const stopCamera = () => {
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    video.srcObject = null;
    cameraBox.hidden = true;
  };
  camera.addEventListener("click", async () => {
    if (!navigator.mediaDevices?.getUserMedia) {
      captureInput.click(); // phones: the system camera through the file input
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true });
    } catch (error) {
      chosen.textContent = `The camera is not available here (${error.name}): choose or drop a file instead.`;
      return;
    }
    video.srcObject = stream;
    cameraBox.hidden = false;
    await video.play().catch(() => {});
    snap.focus();
  });
  snap.addEventListener("click", () => {
    if (!stream || !video.videoWidth) return;
    const canvas = element("canvas", { width: video.videoWidth, height: video.videoHeight });
    canvas.getContext("2d").drawImage(video, 0, 0);
    stopCamera();
    canvas.toBlob((blob) => {
      const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
      enqueue([new File([blob], `camera-${stamp}.jpg`, { type: "image/jpeg" })], "add");
    }, "image/jpeg", 0.92);
  });
  cancel.addEventListener("click", stopCamera);

  model.send({ kind: "ready" });
  return () => {
    stopCamera();
    model.off("msg:custom", onMessage);
    model.off("change:keep_originals", onKeep);
    model.off("change:chosen_text", onLabel);
    for (const url of thumbURLs) URL.revokeObjectURL(url);
  };
}

export default { render };
