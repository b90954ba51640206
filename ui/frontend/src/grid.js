// The justified photo grid of the dualens UI: a Streamlit components v2 module (mounted in the page,
// not an iframe). Python (ui/grid_component.py) passes the photos; this lays them out in rows that
// keep each photo's aspect ratio (Flickr's justified-layout) and sends back what the user does as
// one trigger, "action": {kind: "open" | "similar", id} or {kind: "select", ids, on}.
//
// Each photo is a real <button> around an <img alt>: Tab reaches it, Enter or a tap opens it. Its
// band, name, date and actions (Select, Similar, View) show on hover, on keyboard focus, and while
// selected; a long press (touch) selects it, a shift-click on Select selects a range.
import justifiedLayout from "justified-layout";

const LONG_PRESS_MS = 500;
// kept across the page's reruns and remounts (a shift-click's anchor outlives the first click's
// rerun, which may mount the grid afresh): the last photo (de)selected, a long press under way
const shared = { anchor: null, pressed: null, timer: null };
const GAP = 4;

// the row height aimed at: about 8 photos a row on a desktop (so that >= 30 show above the fold at
// 1440x900), at most data.rowHeight on wide screens; about 3 a row on a phone
function rowHeight(width, data) {
  if (width <= 640) return data.phoneRowHeight || 80;
  return Math.max(data.minRowHeight || 110, Math.min(data.rowHeight || 220, width / (data.perRow || 8)));
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function iconButton(cls, label, title, text) {
  const b = el("button", `dl-act ${cls}`);
  b.type = "button";
  b.setAttribute("aria-label", label);
  b.title = title;
  b.append(el("span", "dl-act-text", text));
  return b;
}

function tile(item, data) {
  const t = el("div", "dl-tile");
  t.dataset.id = String(item.id);
  const open = el("button", "dl-open");
  open.type = "button";
  const img = document.createElement("img");
  img.alt = item.alt;
  img.src = item.src;
  img.width = item.w;
  img.height = item.h;
  img.loading = "lazy";  // place() loads the first screen's at once
  img.decoding = "async";
  img.draggable = false;
  open.append(img);
  t.append(open);
  const over = el("div", "dl-over");
  if (item.band) over.append(el("div", `dl-band dl-band-${item.band}`, item.bandLabel));
  const name = el("div", `dl-name${data.showNames ? "" : " dl-sr"}`, item.name);
  name.title = item.name;
  over.append(name, el("div", "dl-date", item.date));
  if (item.words && item.words.length) {
    const words = el("div", "dl-words");
    words.append(el("span", "dl-words-label", "Words in the photo: "));
    for (const [text, matched] of item.words) words.append(matched ? el("mark", "", text) : document.createTextNode(text));
    over.append(words);
  }
  t.append(over);
  const acts = el("div", "dl-acts");
  const sel = iconButton("dl-sel", `Select ${item.name}`, `Select ${item.name}`, "✓");
  sel.setAttribute("role", "checkbox");
  sel.setAttribute("aria-checked", "false");
  const sim = iconButton("dl-sim", `Similar to ${item.name}`, `Photos similar to ${item.name}`, "Similar");
  const view = iconButton("dl-view", `View ${item.name}`, `Open ${item.name} larger, with its details`, "View");
  acts.append(sel, sim, view);
  t.append(acts);
  return t;
}

function place(root, data) {
  const width = root.clientWidth;
  if (!width) return;
  const items = data.items;
  const layout = justifiedLayout(
    items.map((i) => (i.w > 0 && i.h > 0 ? i.w / i.h : 1)),
    {
      containerWidth: width,
      containerPadding: 0,
      boxSpacing: GAP,
      targetRowHeight: rowHeight(width, data),
      targetRowHeightTolerance: 0.1,
      showWidows: true,
      widowLayoutStyle: "left",
    },
  );
  root.style.height = `${Math.ceil(layout.containerHeight)}px`;
  const top = root.getBoundingClientRect().top;
  root.querySelectorAll(".dl-tile").forEach((t, n) => {
    const box = layout.boxes[n];
    if (!box) return;
    // on the screen now: loaded at once; below it, when scrolled near (the browser's lazy loading)
    if (top + box.top < window.innerHeight) t.querySelector("img").loading = "eager";
    t.style.left = `${box.left}px`;
    t.style.top = `${box.top}px`;
    t.style.width = `${box.width}px`;
    t.style.height = `${box.height}px`;
  });
  root.dataset.rowHeight = String(rowHeight(width, data));
}

function markSelected(root, selected) {
  const on = new Set(selected.map(String));
  root.querySelectorAll(".dl-tile").forEach((t) => {
    const yes = on.has(t.dataset.id);
    t.classList.toggle("dl-selected-tile", yes);
    t.querySelector(".dl-sel").setAttribute("aria-checked", yes ? "true" : "false");
  });
}

// after the viewer closes (Esc or its close button), the focus goes back to the photo it showed last
function watchViewer() {
  if (window.__dualensGridFocus) return;
  window.__dualensGridFocus = true;
  let seen = false;
  setInterval(() => {
    const dialog = document.querySelector('[data-testid="stDialog"] [role="dialog"]');
    if (dialog) {  // the viewer's Next/Previous move on (a rerun may hide it a moment): the photo seen last
      const now = new URLSearchParams(window.location.search).get("photo");
      if (now && document.querySelector(`.dl-tile[data-id="${CSS.escape(now)}"]`)) window.__dualensOpened = now;
      if (window.__dualensOpened) seen = true;
      return;
    }
    const wanted = window.__dualensOpened;
    if (!wanted || !seen) return;
    const button = document.querySelector(`.dl-tile[data-id="${wanted}"] .dl-open`);
    const active = document.activeElement;  // the dialog gives it back to the photo first opened
    const lost = !active || active === document.body || active.closest(".dl-jg");
    if (button && lost) button.focus();
    seen = false;
    window.__dualensOpened = null;
  }, 150);
}

// Streamlit calls this function again with every new data (a rerun that changed the selection) and
// calls what it returns only when the element unmounts: the grid's listeners are added once per
// drawn grid and read the latest call's data and trigger from it (two calls adding two listeners
// made one click toggle twice, undoing itself). Each grid keeps its own selection: a page may show
// several (a similar photo above the rest), each given only its own photos' selection.
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!data || !Array.isArray(data.items)) return;
  let root = parentElement.querySelector(".dl-jg");
  const signature = JSON.stringify([data.items, data.showNames, data.rowHeight]);
  if (!root || root.dataset.signature !== signature) {
    const old = root;
    if (old && old.__dlUnbind) { old.__dlUnbind(); old.__dlUnbind = null; }
    root = el("div", "dl-jg");
    root.dataset.signature = signature;
    root.setAttribute("role", "group");
    root.setAttribute("aria-label", data.label || "Photos");
    data.items.forEach((item) => root.append(tile(item, data)));
    // the new grid takes the old one's place at its height until placed: the page keeps its scroll
    // position (Show more adds photos under the ones seen; an emptied grid would scroll to the top)
    if (old) { root.style.height = old.style.height; old.replaceWith(root); } else parentElement.append(root);
  }
  root.__dl = {
    data,
    selected: (data.selected || []).map(String),
    send: (value) => setTriggerValue("action", { ...value, n: Date.now() + Math.random() }),
  };
  markSelected(root, root.__dl.selected);
  place(root, data);
  watchViewer();
  if (!root.__dlUnbind) root.__dlUnbind = bind(root);
  return () => { if (root.__dlUnbind) root.__dlUnbind(); root.__dlUnbind = null; };
}

// the grid's listeners, added once; they return a function that removes them
function bind(root) {
  const state = shared;
  const now = () => root.__dl;
  const send = (value) => now().send(value);
  const tileOf = (e) => e.target.closest && e.target.closest(".dl-tile");
  const ids = () => Array.from(root.querySelectorAll(".dl-tile")).map((t) => t.dataset.id);
  const toggle = (id, range) => {
    const current = now();
    const on = !current.selected.includes(id);
    let chosen = [id];
    if (range && state.anchor && state.anchor !== id) {
      const all = ids();
      const [a, b] = [all.indexOf(state.anchor), all.indexOf(id)].sort((x, y) => x - y);
      if (a >= 0) chosen = all.slice(a, b + 1);
    }
    state.anchor = id;
    current.selected = on
      ? Array.from(new Set([...current.selected, ...chosen]))
      : current.selected.filter((s) => !chosen.includes(s));
    markSelected(root, current.selected);
    send({ kind: "select", ids: chosen.map(Number), on });
  };
  const onClick = (e) => {
    const t = tileOf(e);
    if (!t) return;
    const id = t.dataset.id;
    if (state.pressed === id) { state.pressed = null; e.preventDefault(); return; }  // a long press selected it
    if (e.target.closest(".dl-sel")) return toggle(id, e.shiftKey);
    if (e.target.closest(".dl-sim")) return send({ kind: "similar", id: Number(id) });
    if (e.target.closest(".dl-open, .dl-view")) {
      if (e.shiftKey || e.ctrlKey || e.metaKey) return toggle(id, e.shiftKey);
      window.__dualensOpened = id;
      return send({ kind: "open", id: Number(id) });
    }
  };
  const cancelPress = () => { clearTimeout(state.timer); state.timer = null; };
  const onDown = (e) => {
    const t = tileOf(e);
    if (!t || e.pointerType !== "touch" || e.target.closest(".dl-act")) return;
    cancelPress();
    state.timer = setTimeout(() => {
      state.timer = null;
      state.pressed = t.dataset.id;
      toggle(t.dataset.id, false);
    }, LONG_PRESS_MS);
  };
  const onMenu = (e) => { if (tileOf(e) && (state.timer || state.pressed)) e.preventDefault(); };
  const onTouchEnd = (e) => {  // a long press's finger lifting: no click may open the photo
    if (state.pressed && tileOf(e)) { e.preventDefault(); setTimeout(() => { state.pressed = null; }, 400); }
  };
  const onMove = (e) => {  // a finger that scrolls is no long press
    if (e.pointerType === "touch" && state.timer && Math.abs(e.movementY) + Math.abs(e.movementX) > 8) cancelPress();
  };
  const observer = new ResizeObserver(() => place(root, now().data));
  observer.observe(root);
  root.addEventListener("click", onClick);
  root.addEventListener("pointerdown", onDown);
  root.addEventListener("pointerup", cancelPress);
  root.addEventListener("pointercancel", cancelPress);
  root.addEventListener("pointermove", onMove);
  root.addEventListener("contextmenu", onMenu);
  root.addEventListener("touchend", onTouchEnd, { passive: false });
  return () => {
    observer.disconnect();
    cancelPress();
    root.removeEventListener("click", onClick);
    root.removeEventListener("pointerdown", onDown);
    root.removeEventListener("pointerup", cancelPress);
    root.removeEventListener("pointercancel", cancelPress);
    root.removeEventListener("pointermove", onMove);
    root.removeEventListener("contextmenu", onMenu);
    root.removeEventListener("touchend", onTouchEnd);
  };
}
