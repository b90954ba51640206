"""The duplicates review page: groups of copies with their suggested keeper, copies moved aside to a
quarantine folder on request (never deleted), and an undo for the last move."""

from __future__ import annotations

import html
from pathlib import Path

import streamlit as st

from indexer.core.errors import DualensError
from search import DuplicateGroup, Member, UndoReport, newest_first
from ui import state
from ui.backend import UiBackend
from ui.views import file_size, placeholder

MAX_GROUPS = 30  # shown at once; the CLI lists them all
((VIEW_PARAM, VIEW),) = (
    state.REVIEW_PARAMS.items()
)  # the review page is ?view=duplicates: Back and links work
FOLDER = "dup_folder"
_LAST_MANIFEST = "dualens_last_manifest"
_DONE = "dualens_duplicates_done"


def is_open() -> bool:
    """Whether the URL asks for the review page."""
    return st.query_params.get(VIEW_PARAM) == VIEW


def open_review() -> None:
    st.query_params.from_dict({VIEW_PARAM: VIEW})


def close_review() -> None:
    st.query_params.clear()


def sidebar_button() -> None:
    """The way in (on the search page) or out (on the review page), in the sidebar."""
    if is_open():
        st.button("Back to search", key="dup-leave", icon=":material/search:", on_click=close_review)
    else:
        st.button(
            "Review duplicates",
            key="dup-open",
            icon=":material/content_copy:",
            on_click=open_review,
            help="Copies of the same photo, to move aside",
        )


def shown_path(path: str, roots: list[Path]) -> str:
    """A photo's path as the user knows it: below its root's name ("photos/trip/a.jpg"), not the
    server's absolute path; the path itself when no root holds it."""
    for root in sorted(roots, key=lambda r: -len(str(r))):
        try:
            rel = Path(path).relative_to(root)
        except ValueError:
            continue
        return f"{root.name or root}/{rel.as_posix()}"
    return path


def why(m: Member) -> str:
    """Why a copy is in its keeper's group, in words."""
    if m.exact:
        return "exact copy: the same file, byte for byte"
    if m.sure:
        return "same pixels: resized or re-encoded"
    return f"similar content (similarity {m.similarity:.2f}): look before moving it"


def _member(backend: UiBackend, group: DuplicateGroup, m: Member, roots: list[Path]) -> None:
    hit = backend.photo(m.id)
    thumb = backend.thumbnail(hit) if hit is not None else None
    where = shown_path(m.path, roots)
    role = "kept photo" if m is group.keeper else "copy"
    st.image(
        str(thumb) if thumb else placeholder(backend.config.thumb_px), width="stretch", alt=f"{where}, {role}"
    )
    when = f"{m.date:%Y-%m-%d} ({'taken' if m.date_taken else 'file date'})"
    facts = [f"{m.width}×{m.height}", file_size(m.size), m.file_type.upper(), when]
    st.markdown(
        f'<div class="dl-path" title="{html.escape(m.path)}">{html.escape(where)}</div>'
        f'<div class="dl-facts">{" · ".join(html.escape(f) for f in facts)}</div>',
        unsafe_allow_html=True,
    )
    if m is group.keeper:
        st.markdown(f"**Keep** ({group.reason})")
        return
    st.markdown(f'<div class="dl-facts dl-why">{html.escape(why(m))}</div>', unsafe_allow_html=True)
    # only sure copies start checked: a photo that is merely similar may be another shot
    same = "identical" if m.exact else ("same pixels" if m.sure else f"similar {m.similarity:.2f}: look")
    if m.linked:
        same = "a link leads to it"
    st.checkbox(f"Move aside ({same})", value=m.sure, key=f"dup-{m.id}", help=m.path, disabled=m.linked)


def render(backend: UiBackend, data_dir: str) -> None:
    st.button(
        "Back to search",
        key="dup-close",
        icon=":material/arrow_back:",
        type="tertiary",
        on_click=close_review,
    )
    st.subheader("Duplicates", anchor=False)
    done = st.session_state.pop(_DONE, None)
    if done:
        st.success(done, icon=":material/check_circle:")
    last = st.session_state.get(_LAST_MANIFEST)
    if last and st.button("Undo the last move", key="dup-undo", icon=":material/undo:"):
        try:
            undone = backend.undo(Path(last))
        except DualensError as exc:
            st.error(str(exc))
            return
        st.session_state.pop(_LAST_MANIFEST, None)
        st.session_state[_DONE] = undo_note(undone)
        st.rerun()
    try:
        groups = backend.duplicates()
    except DualensError as exc:
        st.info(str(exc))
        return
    if not groups:
        st.info("No duplicates: no two photos are copies of one another.", icon=":material/check:")
        return
    if st.session_state.get(state.SORT) == "date":  # the sidebar's Sort: the newest photo's group first
        groups = newest_first(groups)
    copies = [m for g in groups for m in g.copies]
    summary = (
        f"{len(groups)} group(s), {len(copies)} copies ({file_size(sum(m.size for m in copies))}). "
        "dualens never deletes: checked copies are moved to a quarantine folder, with a manifest to undo it."
        + (
            f" The first {MAX_GROUPS} groups are shown; dualens duplicates lists all."
            if len(groups) > MAX_GROUPS
            else ""
        )
    )
    st.markdown(f'<p class="dl-facts">{html.escape(summary)}</p>', unsafe_allow_html=True)
    shown = groups[:MAX_GROUPS]
    roots = [Path(str(r)) for r in (backend.stats().roots or [])]
    for n, group in enumerate(shown, 1):
        kind = "exact copies" if group.exact else "near-duplicates"
        reasons = sorted({why(m).partition(":")[0] for m in group.copies})
        st.markdown(f"**Group {n}**: {len(group.members)} photos, {kind} ({'; '.join(reasons)})")
        grid = st.grid("auto", min_column_width=180, gap="small", border=True)
        for m in group.members:
            with grid.cell():
                _member(backend, group, m, roots)
    folder = st.text_input(
        "Quarantine folder",
        value=str(Path(data_dir) / "quarantine"),
        key=FOLDER,
        help="Checked copies are moved into a new folder inside this one, keeping their paths.",
    )
    chosen = [m.id for g in shown for m in g.copies if st.session_state.get(f"dup-{m.id}", m.sure)]
    if st.button(
        f"Move {len(chosen)} checked copies aside", key="dup-move", type="primary", disabled=not chosen
    ):
        try:
            report = backend.quarantine(chosen, Path(folder))
        except DualensError as exc:
            st.error(str(exc))
            return
        st.session_state[_LAST_MANIFEST] = str(report.manifest)
        where = report.manifest.parent
        note = f"Moved {len(report.moved)} photo(s) to {where} (manifest: {report.manifest.name})."
        if report.skipped:
            note += " Not moved: " + "; ".join(report.skipped[:3])
        st.session_state[_DONE] = note + " They are out of the collection now; Undo puts them back."
        st.rerun()


def undo_note(undone: UndoReport) -> str:
    """What the page says after an undo: "in the collection again" only for the photos whose rows are."""
    n, back = len(undone.restored), undone.back_in_collection
    note = f"Put back {n} photo(s)"
    if back >= n:
        note += ": they are in the collection again."
    elif back:
        note += f": {back} in the collection again, the others return at the next `dualens index`."
    else:
        note += ": they return to the collection at the next `dualens index`."
    if undone.skipped:
        note += " Not restored: " + "; ".join(undone.skipped[:3])
    return note
