"""The light part of the page: style, title and the friendly messages.

Nothing here imports the model layer, so ``ui/app.py`` can paint the page shell at once while the
heavy modules (torch, transformers, FAISS) are still being imported on a fresh server.
"""

from __future__ import annotations

import streamlit as st

CSS = """
<style>
.block-container {padding-top: 2.2rem; padding-bottom: 4rem; max-width: 1400px;}
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
.st-key-chips button {border-radius: 999px; min-height: 1.9rem; padding: 0.1rem 0.75rem;}
/* grid thumbnails: no fullscreen button (a blown-up square crop, a hidden tab stop); View opens the photo */
[data-testid="stGrid"] [data-testid="stElementToolbar"] {display: none;}
[data-testid="stGrid"] [data-testid="stImage"] img {cursor: zoom-in;}
.dl-band {font-size: 0.75rem; font-weight: 600;}
/* a phone: three photos a row, the card's buttons as icons (their names kept for screen readers) */
@media (max-width: 640px) {
  [data-testid="stGrid"] {grid-template-columns: repeat(3, minmax(0, 1fr)) !important;}
  [class*="st-key-card-"] {flex-wrap: nowrap; gap: 0.1rem;}
  [class*="st-key-card-"] button {padding: 0.1rem 0.2rem; min-height: 1.8rem;}
  [class*="st-key-card-"] button [data-testid="stMarkdownContainer"] {position: absolute; width: 1px;
      height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;}
  .dl-name, .dl-band {font-size: 0.7rem;}
}
.dl-band-strong {color: #1e6b30;}
.dl-band-good {color: #3b5bdb;}
.dl-band-weak {color: #5f6670;}
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
.dl-meta td:last-child {word-break: break-all;}
</style>
"""


def inject_css() -> None:
    st.markdown(CSS, unsafe_allow_html=True)


# Browser behaviour Streamlit leaves out, installed once per page load:
# - Back and Forward: the page keeps its state in the URL (ui/state.py), so a history step reloads
#   it and the URL's page comes back exactly;
# - "/" focuses the search box (not while typing elsewhere), and the box has the focus on load;
# - in the photo viewer, the Left and Right keys show the previous and the next photo;
# - each card's buttons get an accessible name with their photo's, and the focus follows a Similar,
#   a way back or a removed filter to the line that says what the results are.
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
  });
  // each card's buttons name their photo for screen readers ("Similar to IMG_1.jpg"), and after a
  // click that changes the results the focus moves to the line that says what they are now
  let pending = null;
  document.addEventListener("click", (e) => {  // a thumbnail opens the viewer, as its View button does
    const thumb = e.target.closest && e.target.closest('[data-testid="stGrid"] [data-testid="stImage"]');
    const view = thumb && thumb.closest(".stGridCell")?.querySelector('[class*="st-key-details-"] button');
    if (view) { view.click(); return; }
  });
  document.addEventListener("click", (e) => {
    const moves = '[class*="st-key-similar-"], .st-key-back, [class*="st-key-chip-"]';
    const line = document.querySelector(".dl-context");
    if (e.target.closest && e.target.closest(moves)) pending = line ? line.innerText : "";
  }, true);
  let queued = false;
  const tidy = () => {
    queued = false;
    document.querySelectorAll('[class*="st-key-similar-"] button, [class*="st-key-details-"] button')
      .forEach((b) => {
        const name = b.closest(".stGridCell")?.querySelector(".dl-name")?.getAttribute("title");
        const verb = b.closest('[class*="st-key-similar-"]') ? "Similar to" : "View";
        const label = `${verb} ${name}`;
        if (name && b.getAttribute("aria-label") !== label) b.setAttribute("aria-label", label);
      });
    const line = document.querySelector(".dl-context");
    if (pending !== null && line && line.innerText !== pending) {
      pending = null;
      line.setAttribute("tabindex", "-1");
      line.focus();
    }
  };
  new MutationObserver(() => { if (!queued) { queued = true; requestAnimationFrame(tidy); } })
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
    st.html(PAGE_SCRIPT, unsafe_allow_javascript=True)


def header() -> None:
    st.markdown(
        '<div class="dl-title">dua<span>lens</span></div>'
        '<div class="dl-tagline">Find photos by describing them, or by showing one.</div>',
        unsafe_allow_html=True,
    )


# ---- messages ----


def no_collection(data_dir: str) -> None:
    st.info(
        f"There is no photo collection in `{data_dir}` yet.\n\n"
        "Index a folder of photos first, for example `make index DIR=~/Pictures` "
        "(or `dualens index --data DIR PHOTOS`), then reload this page.",
        icon=":material/photo_library:",
    )


def broken_collection(message: str) -> None:
    st.error(
        f"The collection cannot be opened: {message}\n\n"
        "`dualens check` tells what is wrong; `dualens rebuild-index` rebuilds a damaged index.",
        icon=":material/error:",
    )


def empty_collection() -> None:
    st.info(
        "This collection has no indexed photos yet. Run `make index DIR=path/to/photos` and reload the page.",
        icon=":material/photo_library:",
    )


def problem(message: str) -> None:
    st.warning(message, icon=":material/error:")


def unexpected() -> None:
    st.error(
        "Something went wrong while answering this request. Details are in the server log; "
        "try another query or reload the page.",
        icon=":material/error:",
    )
