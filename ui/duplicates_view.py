"""The duplicates review page: groups of copies with their suggested keeper, copies moved aside to a
quarantine folder on request (never deleted), and an undo for the last move."""

from __future__ import annotations

import html
from pathlib import Path

import streamlit as st

from indexer.core.errors import DualensError
from search import DuplicateGroup, Member, newest_first, undo
from ui import state
from ui.backend import UiBackend
from ui.views import file_size, placeholder

MAX_GROUPS = 30  # shown at once; the CLI lists them all
REVIEW = "dualens_review_duplicates"  # session key: the review page is open
FOLDER = "dup_folder"
_LAST_MANIFEST = "dualens_last_manifest"
_DONE = "dualens_duplicates_done"


def _member(backend: UiBackend, group: DuplicateGroup, m: Member) -> None:
    hit = backend.photo(m.id)
    thumb = backend.thumbnail(hit) if hit is not None else None
    name = Path(m.path).name
    st.image(str(thumb) if thumb else placeholder(backend.config.thumb_px), width="stretch", caption=name)
    when = f"{m.date:%Y-%m-%d} ({'taken' if m.date_taken else 'file date'})"
    facts = f"{m.width}×{m.height} · {file_size(m.size)} · {m.file_type} · {when}"
    st.markdown(
        f'<div class="dl-name" title="{html.escape(m.path)}">{html.escape(facts)}</div>',
        unsafe_allow_html=True,
    )
    if m is group.keeper:
        st.markdown(f"**Keep** ({group.reason})")
    else:
        # only sure copies start checked: a photo that is merely similar may be another shot
        same = "identical" if m.exact else ("same pixels" if m.sure else f"similar {m.similarity:.2f}: look")
        if m.linked:
            same = "a link leads to it"
        st.checkbox(f"Move aside ({same})", value=m.sure, key=f"dup-{m.id}", help=m.path, disabled=m.linked)


def render(backend: UiBackend, data_dir: str) -> None:
    st.subheader("Duplicates", anchor=False)
    done = st.session_state.pop(_DONE, None)
    if done:
        st.success(done, icon=":material/check_circle:")
    last = st.session_state.get(_LAST_MANIFEST)
    if last and st.button("Undo the last move", key="dup-undo", icon=":material/undo:"):
        undone = undo(Path(last))
        st.session_state.pop(_LAST_MANIFEST, None)
        note = f"Put back {len(undone.restored)} photo(s)."
        if undone.skipped:
            note += " Not restored: " + "; ".join(undone.skipped[:3])
        st.session_state[_DONE] = note + " Run `dualens index` to add them back to the collection."
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
    st.caption(
        f"{len(groups)} group(s), {len(copies)} copies ({file_size(sum(m.size for m in copies))}). "
        "dualens never deletes: checked copies are moved to a quarantine folder, with a manifest to undo it."
        + (
            f" The first {MAX_GROUPS} groups are shown; `dualens duplicates` lists all."
            if len(groups) > MAX_GROUPS
            else ""
        )
    )
    shown = groups[:MAX_GROUPS]
    for n, group in enumerate(shown, 1):
        kind = "exact copies" if group.exact else "near-duplicates"
        st.markdown(f"**Group {n}**: {len(group.members)} photos, {kind}")
        grid = st.grid("auto", min_column_width=180, gap="small", border=True)
        for m in group.members:
            with grid.cell():
                _member(backend, group, m)
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
        st.session_state[_DONE] = note + " Run `dualens index` to update the collection."
        st.rerun()
