"""Code shared by the indexer, the search layer and the UI: model layer, storage schema, settings, errors.

This package is the single home of everything more than one front end needs.
"""
