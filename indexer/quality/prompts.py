"""Prompt templates for zero-shot class embeddings (``{}`` is replaced by the class name)."""

from __future__ import annotations

from pathlib import Path

from indexer.core.errors import NotFoundError, UsageError

# The named sets. "clip7" is the 7-template ensemble OpenAI selected for ImageNet from their 80.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "name": ("{}",),
    "photo": ("a photo of a {}.",),
    "clip7": (
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ),
    "photo5": (
        "a photo of a {}.",
        "a photo of the {}.",
        "a close-up photo of a {}.",
        "a good photo of a {}.",
        "a picture of a {}.",
    ),
}
DEFAULT_TEMPLATES = "photo"


def resolve_templates(spec: str | None) -> tuple[str, ...]:
    """A named set (see :data:`TEMPLATE_SETS`), a file with one template per line, or a literal template."""
    spec = spec or DEFAULT_TEMPLATES
    if spec in TEMPLATE_SETS:
        return TEMPLATE_SETS[spec]
    if "{}" in spec:
        return (spec,)
    path = Path(spec)
    if not path.is_file():
        names = ", ".join(TEMPLATE_SETS)
        raise NotFoundError(
            f"unknown template set {spec!r}: use one of {names}, a file, or a template with {{}}"
        )
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    templates = tuple(ln for ln in lines if ln and not ln.startswith("#"))
    if not templates or any("{}" not in t for t in templates):
        raise UsageError(f"{path}: every template line must contain {{}}")
    return templates
