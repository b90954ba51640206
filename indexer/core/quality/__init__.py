"""Datasets, metrics and the embedding cache shared by evaluation (search/) and LiT training (indexer/)."""
