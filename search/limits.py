"""Limits and defaults that ``dualens``'s parser registers before any search module is loaded.

Importing this module imports nothing: the command line builds its options from it, and the query path's
libraries load only once a command runs (issue #31).
"""

MAX_K = 10_000  # results a page may ask for
MAX_OFFSET = 1_000_000  # how deep into a ranking a page may start
DUPLICATE_THRESHOLD = 0.86  # cosine similarity at or above which two photos are near-duplicates
