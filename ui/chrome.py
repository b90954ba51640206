"""The light part of the page: style, title and the friendly messages.

Nothing here imports the model layer, so ``ui/app.py`` can paint the page shell at once while the
heavy modules (torch, transformers, FAISS) are still being imported on a fresh server.
"""

from __future__ import annotations

import re

import streamlit as st

from indexer.core.text import printable
from ui import theme, thumbsize

# what Markdown and Streamlit (:red[…], :material/icon:, $math$) read anywhere in a line, and at
# its start (a heading, a quote, a list)
_MARKDOWN = re.compile(r"([\\`*_\[\]<>&~$|!]|:(?=\S))")
_LINE_START = re.compile(r"^(\s*)([#+=-]|\d+(?=[.)]))")
# Streamlit links any URL, www. address or e-mail address in Markdown text, escaped or not: an
# invisible word joiner inside "://", after "www" and before "@" keeps them text
_AUTOLINK = re.compile(r"(?<=:)(?=/)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)
_JOINER = "\u2060"


def literal(text: object) -> str:
    """``text`` as Markdown that shows it exactly, for every user-supplied string (query, file,
    folder and place names, EXIF text, messages quoting them) in a message, caption, button label
    or tooltip: on one line, undecodable bytes and control characters escaped (``printable``), and
    each character Markdown would read backslash-escaped, so nothing becomes a link, bold or HTML."""
    one_line = printable(str(text).replace("\r", " ").replace("\n", " "))
    escaped = _MARKDOWN.sub(r"\\\1", _AUTOLINK.sub(_JOINER, one_line))
    return _LINE_START.sub(lambda m: m[1] + (m[2] + "\\" if m[2][0].isdigit() else "\\" + m[2]), escaped)


CSS = """
<style>
.block-container {padding-top: 2.2rem; padding-bottom: 4rem; max-width: 1400px;}
/* the justified grid gets the width: narrow side margins on a desktop */
@media (min-width: 641px) {.block-container {padding-left: 2rem; padding-right: 2rem;}}
[data-testid="stImage"] img {border-radius: 8px;}
.dl-title {font-size: 2rem; font-weight: 700; letter-spacing: -0.02em; margin: 0; line-height: 1.1;}
.dl-title span {color: #e8590c;}
.dl-tagline {color: #6b7280; margin: 0.2rem 0 0.6rem 0; font-size: 0.95rem;}
.dl-name {font-weight: 600; font-size: 0.85rem; white-space: nowrap; overflow: hidden;
          text-overflow: ellipsis; margin-top: 0.15rem;}
.dl-date {color: #5f6670; font-size: 0.75rem;}
.dl-path {font-weight: 600; font-size: 0.85rem; overflow-wrap: anywhere; margin-top: 0.15rem;}
.dl-facts {color: #4b5260; font-size: 0.8rem; overflow-wrap: anywhere;}
.dl-sr {position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
        white-space: nowrap;}
.st-key-chips button, .st-key-chips-understood button {border-radius: 999px; min-height: 1.9rem;
        padding: 0.1rem 0.75rem;}
/* primary buttons: white on a darker red than Streamlit's (#ff4b4b is 3.6:1, under WCAG's 4.5:1) */
button[kind="primary"] {background-color: #c62828; border-color: #c62828; color: #ffffff;}
button[kind="primary"]:hover {background-color: #a51f1f; border-color: #a51f1f; color: #ffffff;}
.dl-band {font-size: 0.75rem; font-weight: 600;}
/* a phone: three photos a row in a card grid (the duplicates view's groups) */
@media (max-width: 640px) {
  [data-testid="stGrid"] {grid-template-columns: repeat(3, minmax(0, 1fr)) !important;}
}
.dl-band-strong {color: #1e6b30;}
.dl-band-good {color: #3b5bdb;}
.dl-band-weak {color: #5f6670;}
.dl-words {font-size: 0.75rem; color: #3d434a; overflow-wrap: anywhere;} .dl-words mark {padding: 0 0.1em;}
.dl-words-label {color: #565d67;}
.dl-divider {margin: 1.2rem 0 0.6rem 0; padding-top: 0.6rem; border-top: 1px dashed #ced4da;
             color: #6b7280; font-size: 0.9rem;}
.dl-context {font-size: 1.05rem; margin: 0;}
.dl-count {color: #6b7280; font-size: 0.9rem; white-space: nowrap;}
[data-testid="stDialog"] [data-testid="stImage"] img {max-height: 72vh; width: auto; max-width: 100%;
    object-fit: contain;}
/* the viewer's "Actual size": the photo pixel for pixel, scrolled inside a frame */
.st-key-viewer-actual-frame {max-height: 72vh; overflow: auto;}
.st-key-viewer-actual-frame [data-testid="stImage"], .st-key-viewer-actual-frame [data-testid="stImage"] * {
    max-width: none !important; max-height: none !important;}
.dl-meta {width: 100%; font-size: 0.88rem; border-collapse: collapse;}
.dl-meta td {padding: 0.28rem 0.4rem; border-bottom: 1px solid #eceef1; vertical-align: top;}
.dl-meta td:first-child {color: #6b7280; white-space: nowrap; width: 32%;}
.dl-meta td:last-child {overflow-wrap: anywhere;}  /* words whole; a long path breaks where it must */
/* the viewer on a phone: Previous and Next side by side (the count below them), the photo first and
   its Actual size switch under it, every control a 44 px touch target */
@media (max-width: 640px) {
  [data-testid="stDialog"] button {min-height: 44px; min-width: 44px;}
  [data-testid="stDialog"] [data-testid="stTooltipIcon"] {min-width: 44px; min-height: 44px;
      display: inline-flex; align-items: center; justify-content: center;}
  [data-testid="stDialog"] [data-testid="stCheckbox"] label {min-height: 44px; align-items: center;}
  .st-key-viewer-nav {flex-wrap: wrap; row-gap: 0.2rem;}
  .st-key-viewer-nav > div:has(.dl-count) {order: 3; flex: 1 1 100%;}
  .st-key-viewer-nav .dl-count {white-space: normal; overflow-wrap: anywhere;}
  .st-key-viewer-prev, .st-key-viewer-next {flex: 1 1 0; min-width: 0;}
  .st-key-viewer-prev button, .st-key-viewer-next button {width: 100%;}
  .st-key-viewer-actual {order: 2;}
}
/* a collapsed sidebar is off screen: nothing in it to scroll to (axe: scrollable-region-focusable) */
[data-testid="stSidebar"][data-collapsed="true"] [data-testid="stSidebarContent"] {overflow: hidden;}
</style>
"""


def inject_css() -> None:
    st.markdown(CSS + theme.CSS, unsafe_allow_html=True)  # theme.CSS: dark variants (ui/theme.py)


# Browser behaviour Streamlit leaves out, installed once per page load:
# - Back and Forward: the page keeps its state in the URL (ui/state.py), so a history step reloads
#   it and the URL's page comes back exactly;
# - "/" focuses the search box (not while typing elsewhere), and the box has the focus on load;
# - in the photo viewer, the Left and Right keys show the previous and the next photo;
# - Enter in a date field applies the dates typed (Streamlit applies them when its calendar closes,
#   which Esc does: Enter is passed on as an Esc);
# - Esc closes the photo viewer wherever the focus is (a click on a photo leaves it on the page);
# - the focus follows a Similar (the grid's or the viewer's), a way back or a removed filter to the
#   line that says what the results are (scrolled into view), and a Clear to the search box.
PAGE_SCRIPT = """
<script>
(() => {
  if (window.__dualens) return;
  window.__dualens = true;
  window.addEventListener("popstate", () => window.location.reload());
  const box = () => document.querySelector('.st-key-q input');
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
    if (e.key === "/" && !typing && box()) { e.preventDefault(); box().focus(); }
    const step = {ArrowLeft: ".st-key-viewer-prev button", ArrowRight: ".st-key-viewer-next button"}[e.key];
    const button = step && !typing && document.querySelector(step);
    if (button && !button.disabled) { e.preventDefault(); button.click(); }
    const dialog = e.key === "Escape" && document.querySelector('[data-testid="stDialog"] [role="dialog"]');
    const close = dialog && !dialog.contains(document.activeElement)
      && dialog.querySelector('button[aria-label="Close"]');
    if (close) { e.preventDefault(); close.click(); }
  });
  document.addEventListener("keydown", (e) => {
    const field = e.key === "Enter" && e.target.closest && e.target.closest('[data-testid="stDateInput"]');
    if (!field || e.target.getAttribute("role") !== "spinbutton") return;
    e.preventDefault();
    e.stopPropagation();
    const esc = {key: "Escape", code: "Escape", keyCode: 27, bubbles: true, cancelable: true};
    e.target.dispatchEvent(new KeyboardEvent("keydown", esc));
  }, true);
  // after a click that changes the results the focus moves to the line that says what they are now
  let pending = null;
  let settle = null;
  document.addEventListener("click", (e) => {
    const moves = '.dl-sim, .st-key-back, .st-key-viewer-similar, [class*="st-key-chip-"]';
    const line = document.querySelector(".dl-context");
    const clear = e.target.closest && e.target.closest(".st-key-clear");
    if (clear || (e.target.closest && e.target.closest(moves)))
      pending = {clear: !!clear, line, text: line ? line.innerText : ""};
  }, true);
  let queued = false;
  const tidy = () => {
    queued = false;
    const line = document.querySelector(".dl-context");
    if (pending && pending.clear && !document.querySelector(".st-key-clear") && box()) {
      pending = null;
      settle = {find: box, until: performance.now() + 2000};
    } else if (pending && !pending.clear && line
               && (line !== pending.line || line.innerText !== pending.text)) {
      const text = line.innerText;
      pending = null;
      settle = {find: () => Array.from(document.querySelectorAll(".dl-context"))
        .find((l) => l.innerText === text), until: performance.now() + 2000};
      line.scrollIntoView({block: "center"});
    }
    keep();
  };
  // the target keeps the focus while the page settles (a closing viewer, a redrawn line)
  const keep = () => {
    const target = settle && performance.now() < settle.until && settle.find();
    const lost = !document.activeElement || document.activeElement === document.body;
    if (target && (lost || !settle.given) && document.activeElement !== target) {
      if (!target.matches("input, button")) target.setAttribute("tabindex", "-1");
      target.focus({preventScroll: true});
    }
    if (settle) settle.given = true;
  };
  document.addEventListener("focusout", () => setTimeout(keep, 0));
  // a scrollable sidebar can be scrolled with the keyboard too (axe: scrollable-region-focusable),
  // marked as soon as it appears rather than at the next frame
  const focusable = () => document.querySelectorAll('[data-testid="stSidebarContent"]:not([tabindex])')
      .forEach((el) => el.setAttribute("tabindex", "0"));
  new MutationObserver(() => { focusable(); if (!queued) { queued = true; requestAnimationFrame(tidy); } })
    .observe(document.documentElement, {subtree: true, childList: true, characterData: true});
  const focusOnce = () => {
    const b = box();
    if (!b) return setTimeout(focusOnce, 100);
    if (!document.activeElement || document.activeElement === document.body) b.focus();
  };
  focusOnce();
})();
</script>
"""


def page_script() -> None:
    st.html(PAGE_SCRIPT + thumbsize.SCRIPT, unsafe_allow_javascript=True)  # + the grid slot's size


def header() -> None:
    st.markdown(
        '<div class="dl-title">dua<span>lens</span></div>'
        '<div class="dl-tagline">Find photos by describing them, or by showing one.</div>',
        unsafe_allow_html=True,
    )


# ---- messages ----


def no_collection(data_dir: str) -> None:
    st.info(
        f"There is no photo collection in {literal(data_dir)} yet.\n\n"
        "Index a folder of photos first, for example `make index DIR=~/Pictures` "
        "(or `dualens index --data DIR PHOTOS`), then reload this page.",
        icon=":material/photo_library:",
    )


def broken_collection(message: str) -> None:
    st.error(
        f"The collection cannot be opened: {literal(message)}\n\n"
        "`dualens check` tells what is wrong; `dualens rebuild-index` rebuilds a damaged index.",
        icon=":material/error:",
    )


def empty_collection() -> None:
    st.info(
        "This collection has no indexed photos yet. Run `make index DIR=path/to/photos` and reload the page.",
        icon=":material/photo_library:",
    )


def problem(message: str) -> None:
    st.warning(literal(message), icon=":material/error:")


def unexpected() -> None:
    st.error(
        "Something went wrong while answering this request. Details are in the server log; "
        "try another query or reload the page.",
        icon=":material/error:",
    )
