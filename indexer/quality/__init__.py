"""How a model is measured and trained: ``dualens eval`` and ``dualens train``.

    data.py            captioned / labelled image sets (CSV or file names)
    prompts.py         zero-shot prompt templates
    metrics.py         recall@K, median rank, top-1/top-5
    cache.py           on-disk vector cache keyed by model fingerprint and file
    evaluate.py        retrieval and zero-shot evaluation of any encoder
    train_config.py    training options (and their command-line flags)
    train_features.py  the base model and its locked-tower features
    train_head.py      the trainable LiT head and contrastive loss
    train.py           the training loop with validation and early stopping
    train_save.py      saving the trained model as a plain checkpoint
    commands.py        the ``eval`` and ``train`` subcommands

Images are read exactly as the indexer reads them (:mod:`indexer.core.imaging`), so evaluation
measures the pixels that are indexed. Depends only on :mod:`indexer.core`.
"""
