"""Load: five dashboard sessions at once in one server process (AppTest sessions on five threads, sharing the
process-wide caches, encoder pool, embedding cache and results folder as `streamlit run` sessions do).

Each session uploads its own lexicon and runs its own small evaluation; every session must see only its own
progress and rows, no exceptions, and no other session's upload. The process RSS is printed (pytest -s) and
bounded loosely.

AppTest swaps a process-global mock Runtime in and out around every script run, so two AppTest runs must not
overlap: script reruns take turns under a lock (each is a fraction of a second), while the five evaluations run
truly concurrently on the page's background worker threads, which is where a server's sessions really compete.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from .conftest import REPO, page_path

SESSIONS = 5
APP = str(REPO / "dashboard.py")
_SCRIPT_RUN = threading.Lock()


def _rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


@pytest.fixture
def fresh_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def _widget(at, kind: str, key: str):
    return next(w for w in getattr(at, kind) if w.key == key)


def _check(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _run(at) -> None:
    """One script rerun of this session (taking turns with the other sessions), then check it raised nothing."""
    with _SCRIPT_RUN:
        at.run()
    _check(at)


def _session(index: int, model: str, report: dict) -> None:
    """One browser session: upload a lexicon on the Code-switch page, then run an eval and follow its progress."""
    from streamlit.testing.v1 import AppTest

    photos = 12 + 2 * index  # every session asks for something different (more photos than the largest K, 10)
    langs = ["en", ["de", "fr", "cs"][index % 3]]
    at = AppTest.from_file(APP, default_timeout=180)
    _run(at)

    at.switch_page(str(page_path("codeswitch.py").relative_to(REPO)))
    _run(at)
    _widget(at, "radio", "cs_lex_source").set_value("Upload a file")
    _run(at)
    word = f"session{index}"
    at.file_uploader(key="cs_upload").set_value((f"en-de-{index}.txt", f"dog {word}\nred rot\n".encode(),
                                                  "text/plain"))
    _run(at)
    upload_dir = Path(at.session_state["_upload_dir"])

    at.switch_page(str(page_path("run_eval.py").relative_to(REPO)))
    _run(at)
    _widget(at, "text_input", "run_model_custom").set_value(model)
    _widget(at, "multiselect", "run_langs").set_value(langs)
    _widget(at, "multiselect", "run_settings").set_value(["monolingual"])
    _widget(at, "number_input", "run_max_images").set_value(photos)
    _widget(at, "number_input", "run_resamples").set_value(100)
    _run(at)
    _widget(at, "button", "run_start").click()
    _run(at)
    job = at.session_state["run_job"]
    seen: set[str] = set()
    deadline = time.time() + 240
    while job.snapshot().active:
        assert time.time() < deadline, f"session {index}: evaluation did not finish"
        time.sleep(0.5)
        _run(at)
        seen.update(str(p.proto.text) for p in at.get("progress"))
    _run(at)
    _run(at)
    report[index] = {"photos": photos, "langs": langs, "job": job, "snapshot": job.snapshot(), "progress": seen,
                     "upload_dir": upload_dir, "word": word,
                     "success": [s.value for s in at.success], "errors": [e.value for e in at.error]}


def test_five_concurrent_sessions_each_see_only_their_own_work(tiny_model, shared_data, tmp_path, monkeypatch,
                                                              fresh_streamlit_caches):
    from csr_core.results import ResultsStore

    monkeypatch.setenv("CSR_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache"))
    rss_before = _rss_mib()[0]
    report: dict[int, dict] = {}
    failures: list[str] = []

    def guarded(index: int) -> None:
        try:
            _session(index, tiny_model, report)
        except BaseException as error:  # noqa: BLE001 - every session's failure is reported below
            import traceback

            failures.append(f"session {index}: {type(error).__name__}: {error}\n{traceback.format_exc()}")

    threads = [threading.Thread(target=guarded, args=(i,), name=f"session-{i}") for i in range(SESSIONS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=400)
    elapsed = time.monotonic() - started
    rss_after, rss_peak = _rss_mib()
    assert not failures, "\n".join(failures)
    assert sorted(report) == list(range(SESSIONS))
    print(f"\n{SESSIONS} concurrent sessions in {elapsed:.1f} s; process RSS {rss_before:.0f} -> {rss_after:.0f} MiB "
          f"(peak {rss_peak:.0f} MiB)")

    store = ResultsStore()
    rows = store.load()
    assert len(store.runs()) == SESSIONS  # one complete run per session, none lost or merged
    jobs = [entry["job"] for entry in report.values()]
    assert len({id(job) for job in jobs}) == SESSIONS  # every session has its own job object
    observed = 0
    upload_dirs = [entry["upload_dir"] for entry in report.values()]
    assert len(set(upload_dirs)) == SESSIONS
    for index, entry in report.items():
        snap = entry["snapshot"]
        assert snap.status == "done", f"session {index}: {snap.error}"
        own = snap.result.rows
        recall = own[own["metric"] == "recall"]
        # its own rows: its photo count and its languages, nobody else's
        assert (recall["n_queries"] == entry["photos"]).all(), index
        assert set(recall["query_lang"]) - {"img"} == set(entry["langs"])
        assert any(f"Run `{snap.result.run_id}` written" in text for text in entry["success"])
        assert not entry["errors"]
        # its own progress: every encoding stage its job went through was for its own languages (the job's stage
        # history, complete whatever the timing), and every count the page happened to show mid-run was at most its
        # own photos (the total is what was not cached yet: sessions share the embedding cache, so it may be fewer)
        stages = [m.group(2) for stage in snap.stages_done for m in [re.fullmatch(r"encode (images|captions (\w+))",
                                                                                  stage)] if m]
        assert all(lang in (None, *entry["langs"]) for lang in stages), (index, snap.stages_done)
        shown = [m.groups() for text in entry["progress"]
                 for m in [re.search(r"encode (images|captions (\w+)): \d+/(\d+)", text)] if m]
        for _, lang, total in shown:
            assert int(total) <= entry["photos"] and lang in (None, *entry["langs"]), (index, entry["progress"])
        observed += bool(stages)
        stored = rows[rows["run_id"] == snap.result.run_id]
        assert len(stored) == len(own)
        # its upload only: no other session's file or words in its folder
        files = list(entry["upload_dir"].iterdir())
        assert [f.name for f in files] == [f"en-de-{index}.txt"]
        assert entry["word"] in files[0].read_text()
        others = {e["word"] for i, e in report.items() if i != index}
        assert not any(word in files[0].read_text() for word in others)
    assert observed, "no job reported an encoding stage: the progress check above proved nothing"
    assert rss_peak < 6 * 1024  # MiB: five sessions of the tiny model stay far below the machine's memory
