"""Light and dark: the page follows the system's ``prefers-color-scheme``.

Streamlit's own colours follow it when the server sets a light *and* a dark theme and no
``theme.base`` (:data:`STREAMLIT_FLAGS`, used by ``ui/commands.py``): its "Use system setting".
Our own colours (``chrome.CSS``: match bands, hints, counts, the viewer's table, the duplicates
page's facts) get dark variants here, under ``@media (prefers-color-scheme: dark)``, each at least
4.5:1 on Streamlit's dark backgrounds (#0e1117, the sidebar's and code's #262730). The timeline's
month headings are styled here too. Nothing here imports the model layer.
"""

from __future__ import annotations

ACCENT = "#e8590c"  # the "lens" of the title; Streamlit's primary colour in both themes

STREAMLIT_FLAGS = (f"--theme.light.primaryColor={ACCENT}", f"--theme.dark.primaryColor={ACCENT}")

CSS = """
<style>
.dl-month {font-size: 1.15rem; font-weight: 650; margin: 1.1rem 0 0.35rem 0; padding: 0;}
/* captions: Streamlit's (text at 60 % opacity) is under 4.5:1 on the light theme's white */
[data-testid="stCaptionContainer"] {opacity: 1;}
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p {color: #565d67;}
@media (prefers-color-scheme: dark) {
  .dl-tagline, .dl-count, .dl-meta td:first-child {color: #a8afb9;}
  .dl-date, .dl-band-weak {color: #a8afb9;}
  .dl-facts {color: #b8bec8;}
  [data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p {color: #a8afb9;}
  .dl-band-strong {color: #6fcf8a;}
  .dl-band-good {color: #9db4ff;}
  .dl-divider {border-top-color: #3d434c; color: #a8afb9;}
  .dl-meta td {border-bottom-color: #2c3038;}
  /* words read in the photo: light grey text, matched words on a dark amber, not glaring yellow */
  .dl-words {color: #c9d1d9;}
  .dl-words mark {background-color: #6b5200; color: #ffffff;}
  .dl-words-label {color: #a8afb9;}
  /* primary buttons keep the darker red with white text (5.6:1) */
}
</style>
"""
