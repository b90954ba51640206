"""Grid thumbnails sized to their slot: the slot's width times the device pixel ratio, rounded up to
one of a few sizes (:data:`SIZES`, at most ``UiConfig.thumb_px``), each cached on disk like any
thumbnail.

The browser says what it needs: :data:`SCRIPT` measures a grid photo (or estimates the slot from
the window) and keeps ``width × devicePixelRatio`` in the ``dualens_slot`` cookie, which the page
reads when a session starts (``st.context.cookies``). Before the browser has said it (a first
visit), a phone (its user agent says "Mobi") gets the largest size and a desktop
:data:`DESKTOP_GUESS`. ``DUALENS_UI_SLOT_SIZING=0`` serves every grid thumbnail at ``thumb_px``.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SIZES = (128, 192, 256, 384)
COOKIE = "dualens_slot"
DESKTOP_GUESS = 256  # a ~180-px slot at a device pixel ratio up to 1.4
SIZING_ENV = "DUALENS_UI_SLOT_SIZING"


def snap(px: int, cap: int) -> int:
    """The smallest allowed size at least ``px`` (``cap`` itself is allowed, and is the most)."""
    allowed = sorted({s for s in SIZES if s < cap} | {cap})
    return next((s for s in allowed if s >= px), cap)


def grid_px(cookies: Mapping[str, str], headers: Mapping[str, str], cap: int) -> int:
    """The grid thumbnail size for this browser: its slot cookie when valid, else a guess from its
    user agent; ``cap`` when slot sizing is off."""
    if os.environ.get(SIZING_ENV, "1").strip() == "0":
        return cap
    raw = str(cookies.get(COOKIE) or "").strip()
    if raw.isdigit() and 32 <= int(raw) <= 4096:
        return snap(int(raw), cap)
    agent = str(headers.get("User-Agent") or headers.get("user-agent") or "")
    return cap if "Mobi" in agent else snap(DESKTOP_GUESS, cap)


SCRIPT = """
<script>
(() => {
  const remember = () => {
    const img = document.querySelector('[data-testid="stGrid"] [data-testid="stImage"] img');
    const w = window.innerWidth;
    const css = img && img.getBoundingClientRect().width || (w <= 640 ? (w - 32) / 3 : 180);
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
