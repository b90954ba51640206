"""Limits and defaults of indexing and image reading, light enough for the CLI parser (no torch, no PIL)."""

from __future__ import annotations

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb threshold (~179 megapixels)
DEFAULT_MAX_FILE_BYTES = 1 << 30  # larger files are recorded as "too large" without being read
DEFAULT_DECODE_TIMEOUT = 60.0  # seconds one file may take to decode (the largest real photos take ~1 s)
