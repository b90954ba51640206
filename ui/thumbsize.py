"""Grid thumbnails sized to their slot: the slot's width times the device pixel ratio, rounded up to
one of a few sizes (:data:`SIZES`, at most ``UiConfig.thumb_px``), each cached on disk like any
thumbnail.

The browser says what it needs: :data:`SCRIPT` measures a grid photo (or estimates the slot from
the window) and keeps ``width × devicePixelRatio`` in the ``dualens_slot`` cookie, which the page
reads when a session starts (``st.context.cookies``). Before the browser has said it (its first
visit: the cookie is set after the session began) every grid thumbnail is ``thumb_px``, sharp at
any pixel ratio up to 3. ``DUALENS_UI_SLOT_SIZING=0`` serves ``thumb_px`` always.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SIZES = (128, 192, 256, 384)
COOKIE = "dualens_slot"
SIZING_ENV = "DUALENS_UI_SLOT_SIZING"


def snap(px: int, cap: int) -> int:
    """The smallest allowed size at least ``px`` (``cap`` itself is allowed, and is the most)."""
    allowed = sorted({s for s in SIZES if s < cap} | {cap})
    return next((s for s in allowed if s >= px), cap)


def grid_px(cookies: Mapping[str, str], cap: int) -> int:
    """The grid thumbnail size for this browser: for its slot cookie when valid, else ``cap`` (a
    guess could be blurry: a user agent tells neither the pixel ratio nor the window)."""
    if os.environ.get(SIZING_ENV, "1").strip() == "0":
        return cap
    raw = str(cookies.get(COOKIE) or "").strip()
    return snap(int(raw), cap) if raw.isdigit() and 32 <= int(raw) <= 4096 else cap


SCRIPT = """
<script>
(() => {
  const remember = () => {
    // the justified grid's tiles (ui/grid_component.py): the longest side of the widest one
    const tiles = Array.from(document.querySelectorAll('.dl-jg .dl-tile')).slice(0, 24)
      .map((t) => Math.max(t.getBoundingClientRect().width, t.getBoundingClientRect().height));
    const w = window.innerWidth;
    const css = Math.max(0, ...tiles) || (w <= 640 ? (w - 32) / 3 : 180);
    const px = Math.round(css * (window.devicePixelRatio || 1));
    if (px > 0) document.cookie = `dualens_slot=${px}; path=/; max-age=31536000; SameSite=Lax`;
  };
  remember();
  if (window.__dualensSlot) return;
  window.__dualensSlot = true;
  window.addEventListener("resize", remember);
  setTimeout(remember, 2000);  // the grid drawn by then: its real slot
})();
</script>
"""
