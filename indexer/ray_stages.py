"""The Ray engine's two stages, run on the cluster's workers (``indexer.ray_engine`` joins them):

decode_batch   a Ray Data task: read, hash and decode a batch of files (``decode_file_within``)
EmbedWorker    an actor: the model loaded once, then each batch embedded; on PostgreSQL (``stage``)
               it also COPYs the rows of the batch's new files into the run's staging table itself
               (``indexer.core.storage.staging``), so their vectors never travel to the driver
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np

from indexer.core.errors import ModelError
from indexer.core.storage.batches import NewVectors
from indexer.core.storage.staging import StageSink, StageSpec
from indexer.decode import Decoded, DecodeOptions, DecodeResult, DecodeTask, decode_file_within

PASSED = ("path", "root", "file_type", "existing")  # columns decode passes on to the actors


def _pack(result: DecodeResult) -> bytes:
    if isinstance(result, Decoded):
        result = replace(result, pixels=np.zeros(0, np.float16))  # the pixels travel in their own column
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def decode_batch(
    batch: dict[str, np.ndarray], opts: DecodeOptions, known: frozenset[str]
) -> dict[str, np.ndarray]:
    """Decode one batch of files: a pickled result per file and a pixel array (zeros if not decoded).

    Each file is given up after ``opts.timeout`` seconds on the wall clock (recorded as too slow).
    """
    from indexer.core.imaging import register_optional_plugins

    register_optional_plugins()
    shape = (len(batch["item_no"]), 3, *opts.cfg.size)
    results, pixels = [], np.zeros(shape, dtype=opts.transfer_dtype)
    for n, (item_no, path, old_hash) in enumerate(
        zip(batch["item_no"], batch["path"], batch["old_hash"], strict=True)
    ):
        task = DecodeTask(int(item_no), str(path), str(old_hash) or None)
        result = decode_file_within(task, opts, known)
        if isinstance(result, Decoded):
            pixels[n] = result.pixels
        results.append(_pack(result))
    passed = {k: batch[k] for k in PASSED if k in batch}  # what the embedding actors stage rows with
    return {"result": np.array(results, dtype=object), "pixels": pixels, **passed}


class EmbedWorker:
    """One embedding actor: loads the model once, then embeds every batch Ray Data sends it (and with
    ``stage``, stages the rows of its new files itself: their vectors do not travel back)."""

    def __init__(
        self,
        model: str,
        backend: str,
        device: str,
        model_id: str,
        fingerprint: str | None,
        stage: StageSpec | None = None,
    ) -> None:
        from indexer.core.models import DualEncoder

        self.sink = None if stage is None else StageSink(stage)
        self.encoder = DualEncoder(model, device=device, backend=backend, threads=None)
        if self.encoder.model_id != model_id or self.encoder.fingerprint != fingerprint:
            raise ModelError(
                f"this worker's model {self.encoder.model_id} differs from the driver's {model_id} "
                "(not the same files on every node?)"
            )
        self.encoder.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.loads(r) for r in batch["result"]]
        wanted = [n for n, r in enumerate(results) if isinstance(r, Decoded)]
        vectors = np.zeros((len(results), self.encoder.dim), dtype=np.float32)
        visual = np.zeros((len(results), self.encoder.visual_dim), dtype=np.float32)
        if wanted:
            joint, seen = self.encoder.embed_pixels_pair(
                np.asarray(batch["pixels"][wanted], dtype=np.float32)
            )
            vectors[wanted] = joint
            if seen is not None:
                visual[wanted] = seen
        if self.sink is None:
            return {"result": batch["result"], "vector": vectors, "visual": visual}
        return self._staged(batch, results, wanted, vectors, visual if visual.shape[1] else None)

    def _staged(
        self,
        batch: dict[str, np.ndarray],
        results: list[DecodeResult],
        wanted: list[int],
        vectors: np.ndarray,
        visual: np.ndarray | None,
    ) -> dict[str, np.ndarray]:
        """Stage the new files' rows; their vectors go back empty, with the call's token."""
        assert self.sink is not None
        new = {n for n in wanted if not batch["existing"][n]}
        rows = [
            (int(results[n].item_no), _new_row(batch, n, results[n], vectors[n], visual)) for n in sorted(new)
        ]
        token = self.sink.write(rows)
        empty = np.zeros(0, np.float32)
        out_vectors, out_visual = np.empty(len(results), object), np.empty(len(results), object)
        for n in range(len(results)):
            staged = n in new
            out_vectors[n] = empty if staged else vectors[n]
            out_visual[n] = empty if staged or visual is None else visual[n]
        tokens = np.array([token if n in new else "" for n in range(len(results))], dtype=object)
        return {"result": batch["result"], "vector": out_vectors, "visual": out_visual, "token": tokens}


def _new_row(
    batch: dict[str, np.ndarray], n: int, result: DecodeResult, vector: np.ndarray, visual: np.ndarray | None
) -> NewVectors:
    """The NewVectors of a new file, as the driver's writer would make it."""
    from indexer.plan import WorkItem
    from indexer.scan import ScannedFile
    from indexer.writer import Embedded
    from indexer.writer import _row_write as row_write  # the driver's own conversion

    assert isinstance(result, Decoded)
    file = ScannedFile(str(batch["path"][n]), str(batch["root"][n]), str(batch["file_type"][n]), 0, 0)
    row = row_write(Embedded(WorkItem(file, None), result, vector, None if visual is None else visual[n]))
    assert isinstance(row, NewVectors)
    return row
