"""Limits and defaults of indexing and image reading, light enough for the CLI parser (no torch, no PIL)."""

from __future__ import annotations

import os

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb threshold (~179 megapixels)
DEFAULT_MAX_FILE_BYTES = 1 << 30  # larger files are recorded as "too large" without being read
DEFAULT_DECODE_TIMEOUT = 60.0  # seconds one file may take to decode (the largest real photos take ~1 s)
# scans x pixels a JPEG may ask of the decoder (each scan of a progressive JPEG visits every block):
# ~1-3 s of CPU; a 12-megapixel progressive photo with 10 scans needs 0.12 billion, a 179-megapixel
# one 1.8 billion, while a 300 KB file with 190 scans at 49 megapixels asks 9.3 billion
MAX_JPEG_SCAN_PIXELS = 2_000_000_000
DEFAULT_UPLOAD_DECODE_TIMEOUT = 15.0  # wall-clock seconds an upload may take to decode (50 MP: ~2-6 s)
# uploads decoded at once, each in its own memory-limited process: half the cores, so searches keep some
UPLOAD_DECODERS = max(1, min(4, (os.cpu_count() or 2) // 2))
