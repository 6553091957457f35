"""The dashboard in a real browser: `streamlit run dashboard.py` on a free port, driven by headless Debian chromium.

AppTest (tests/test_dashboard_apptest.py) checks each page's logic; this suite checks what AppTest cannot: the real
server, websocket reruns, the frontend's widgets and rendering (no exception element, no uncaught JS error), live
re-rendering without a page reload, the background worker through a real click, and screenshots of every page
(test-artifacts/browser/*.png, gitignored).
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

# (url path, heading the page must show); the default page is served at the app root.
PAGES = (
    ("", "CSR Lab — overview"),
    ("codeswitch", "Code-switch explorer"),
    ("heatmaps", "R@K heatmaps"),
    ("gaps", "Gaps vs typology"),
    ("run", "Run eval"),
    ("finetune", "Fine-tuning arms"),
)


def plotly_charts(page) -> list[dict]:
    """Title and trace axes of every plotly chart on the page, read from the live plotly graph divs."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(div => ({
        title: (div.layout && div.layout.title && (div.layout.title.text || div.layout.title)) || '',
        traces: (div.data || []).map(t => ({name: t.name || '', type: t.type,
                                            x: Array.from(t.x || []).map(String),
                                            y: Array.from(t.y || []).map(String)}))
    }))""")


def heading(page) -> str:
    return page.locator("h1").first.inner_text().strip()


def switched_html(page) -> str:
    return page.locator(".cs-switched").first.inner_html()


@pytest.mark.parametrize("path,title", PAGES, ids=[p or "overview" for p, _ in PAGES])
def test_every_page_renders_without_exception(dashboard, app_page, path, title):
    dashboard.open(app_page, path)
    assert heading(app_page) == title
    assert dashboard.exceptions(app_page) == [], dashboard.server_log()
    assert app_page.locator("[data-testid='stAlertContentError']").count() == 0
    assert dashboard.page_errors == []
    if path in ("", "heatmaps", "gaps", "finetune"):  # result pages draw charts from the real store
        n = dashboard.charts_drawn(app_page)
        charts = plotly_charts(app_page)
        assert len(charts) == n and all(c["traces"] for c in charts), charts
    if path == "":
        metrics = app_page.locator("[data-testid='stMetricValue']").all_inner_texts()
        assert metrics[:3] == [str(len(dashboard.runs)), "2", "1"]  # runs, models, datasets
    if path == "heatmaps":
        main = next(c for c in plotly_charts(app_page) if "model × caption language" in c["title"])
        assert main["traces"][0]["x"] == ["en", "de", "fr", "cs"]  # languages.display_order
        labels = main["traces"][0]["y"]
        assert len(labels) == 2 and {label.rsplit("· ", 1)[1] for label in labels} == {"en", "mlcs-de-fr"}, labels
    dashboard.screenshot(app_page, path or "overview")


def test_the_overview_deep_link_opens_the_overview(dashboard, app_page):
    """`/overview` (the default page's own url path, e.g. from a shared link) used to show "Page not found"."""
    dashboard.open(app_page, "overview?k=5")
    assert heading(app_page) == "CSR Lab — overview"
    assert app_page.get_by_text("Page not found").count() == 0
    assert dashboard.exceptions(app_page) == [] and dashboard.page_errors == []


def test_changing_p_rerenders_the_switched_caption_live(dashboard, app_page):
    from playwright.sync_api import expect
    dashboard.open(app_page, "codeswitch")
    app_page.evaluate("() => { window.__csrSamePage = 'yes'; }")  # survives reruns, not a reload
    slider = app_page.get_by_role("slider", name="Switch probability p")  # react-aria's <input type=range>
    expect(slider).to_have_value("0.5")
    half = switched_html(app_page)

    dashboard.after(app_page, lambda: (slider.focus(), slider.press("End")))
    expect(slider).to_have_value("1")
    full = switched_html(app_page)
    assert full != half and full.count('data-lang="de"') > half.count('data-lang="de"') > 0

    dashboard.after(app_page, lambda: (slider.focus(), slider.press("Home")))
    none = switched_html(app_page)
    assert "<mark" not in none and none != full
    original = re.sub(r"<[^>]+>", "", app_page.locator(".cs-original").first.inner_html())
    assert re.sub(r"<[^>]+>", "", none).strip() == original.strip()  # p = 0: nothing switched
    assert app_page.evaluate("() => window.__csrSamePage") == "yes"  # no page reload happened
    assert "p=0" in app_page.url and dashboard.exceptions(app_page) == []
    dashboard.screenshot(app_page, "codeswitch-p0")


def test_a_shared_explorer_link_reproduces_the_view(dashboard, app_page):
    from playwright.sync_api import expect
    dashboard.open(app_page, "codeswitch?p=1.0&langs=fr&mode=bl&seed=3&text=A+red+dog+runs.")
    html = switched_html(app_page)
    assert 'data-lang="fr"' in html and 'data-lang="de"' not in html
    original = re.sub(r"<sub[^>]*>.*?</sub>|<[^>]+>", "", app_page.locator(".cs-original").first.inner_html())
    assert original.strip() == "A red dog runs."
    # Web-first assertions: a widget whose value came from session state can show its proto default for a frame
    # after the run ends (React applies the set value in an effect); `expect` waits for the value instead of
    # reading the DOM once (a wrong value still fails, after the timeout).
    expect(app_page.get_by_role("slider", name="Switch probability p")).to_have_value("1")
    expect(app_page.get_by_label("Seed", exact=True)).to_have_value("3")
    assert dashboard.exceptions(app_page) == []


def test_widget_state_survives_switching_pages_in_the_sidebar(dashboard, app_page):
    dashboard.open(app_page, "heatmaps")
    dashboard.charts_drawn(app_page)
    k_label = app_page.locator("[data-testid='stWidgetLabel']", has_text=re.compile(r"^K$"))
    k_box = app_page.locator("[data-testid='stSelectbox']").filter(has=k_label)
    assert k_box.count() == 1
    dashboard.after(app_page, lambda: (k_box.click(), app_page.get_by_role("option", name="1", exact=True).click()))
    assert any("R@1 (model × caption language)" in c["title"] for c in plotly_charts(app_page))
    assert "k=1" in app_page.url
    sidebar = app_page.locator("[data-testid='stSidebarNav']")
    dashboard.after(app_page, lambda: sidebar.get_by_text("Gaps vs typology").click())
    assert heading(app_page) == "Gaps vs typology"
    dashboard.after(app_page, lambda: sidebar.get_by_text("R@K heatmaps").click())
    assert heading(app_page) == "R@K heatmaps"
    dashboard.charts_drawn(app_page)
    assert any("R@1 (model × caption language)" in c["title"] for c in plotly_charts(app_page))
    assert dashboard.exceptions(app_page) == [] and dashboard.page_errors == []


def test_small_eval_from_the_run_page_appears_in_the_heatmaps(dashboard, app_page):
    model = dashboard.tiny_model(seed=7)
    dashboard.open(app_page, "run")
    # The model catalogue is listed by a background worker whose end reruns the page: typing while that rerun
    # redraws the inputs can lose the keystrokes (no script run follows). Wait for it first, as the AppTest does.
    app_page.get_by_text("Checking which models can run here", exact=False).wait_for(state="detached",
                                                                                     timeout=180_000)
    dashboard.wait_ready(app_page)
    for label, value in (("…or a model name", model), ("Images (0 = all)", "12"), ("Bootstrap resamples", "100"),
                         ("Training arm label (blank for zero-shot)", "browser-arm")):
        box = app_page.get_by_label(label, exact=True)
        dashboard.after(app_page, lambda box=box, value=value: (box.fill(value), box.press("Enter")))
    start = app_page.get_by_role("button", name="Start evaluation")
    assert start.is_enabled()
    start.click()
    success = app_page.locator("[data-testid='stAlertContentSuccess']").filter(has_text="written")
    success.wait_for(timeout=150_000)
    dashboard.wait_ready(app_page)
    run_id = re.search(r"Run (\S+) written", success.inner_text()).group(1)
    assert (dashboard.results / "runs" / run_id / "rows.parquet").is_file()
    dashboard.screenshot(app_page, "run-done")

    dashboard.after(app_page, lambda: app_page.get_by_text("See it in the heatmaps").click())
    assert heading(app_page) == "R@K heatmaps"
    dashboard.charts_drawn(app_page)
    main = next(c for c in plotly_charts(app_page) if "model × caption language" in c["title"])
    rows = main["traces"][0]["y"]
    assert len(rows) == 3 and any(r.endswith("· browser-arm") and "tiny-seed7" in r for r in rows), rows
    assert dashboard.exceptions(app_page) == [] and dashboard.page_errors == []
    dashboard.screenshot(app_page, "heatmaps-after-run")


def switched_view(page) -> dict:
    """What the browser made of the code-switched caption: its block's direction, its text without the language
    labels, and every isolated word with its `dir` attribute and the direction the browser resolved for it."""
    page.locator(".cs-switched").first.wait_for()  # the HTML element can attach just after the run ends
    return page.evaluate("""() => {
        const block = document.querySelector('.cs-switched');
        const bare = block.cloneNode(true);
        bare.querySelectorAll('sub').forEach(label => label.remove());
        return {dir: block.getAttribute('dir'), direction: getComputedStyle(block).direction, text: bare.textContent,
                words: Array.from(block.querySelectorAll('mark.cs-span > bdi')).map(b => ({
                    dir: b.getAttribute('dir'), direction: getComputedStyle(b).direction,
                    text: Array.from(b.childNodes).filter(n => n.nodeType === Node.TEXT_NODE)
                        .map(n => n.textContent).join('')}))};
    }""")


@pytest.mark.parametrize("lang, text, block_dir", [("ar", "A red dog on the beach.", "ltr"), ("ar", "red dog", "rtl"),
                                                   ("zh", "A small dog on the beach.", "ltr")],
                         ids=["arabic-in-english", "all-arabic", "chinese"])
def test_explorer_isolates_arabic_words_and_joins_chinese_ones(dashboard, app_page, shared_data, lang, text,
                                                              block_dir):
    from urllib.parse import quote_plus

    import regex

    from csr_core.codeswitch import CodeSwitcher
    from csr_core.lexicon import load_muse

    expected = CodeSwitcher({lang: load_muse(lang, shared_data)}, "bl", p=1.0, seed=0).switch(text)
    dashboard.open(app_page, f"codeswitch?p=1.0&langs={lang}&mode=bl&seed=0&text={quote_plus(text)}")
    view = switched_view(app_page)
    assert view["text"] == expected.text  # what the page shows is the data, no control characters added
    assert (view["dir"], view["direction"]) == (block_dir, block_dir)
    arabic = regex.compile(r"\p{Arabic}")
    assert view["words"] == [{"dir": d, "direction": d, "text": s.replacement} for s in expected.spans
                             for d in ["rtl" if arabic.search(s.replacement) else "ltr"]]
    by_source = {s.source.lower(): s.replacement for s in expected.spans}
    if lang == "ar":
        assert sum(word["dir"] == "rtl" for word in view["words"]) >= 2
    else:
        assert by_source["small"] + by_source["dog"] in view["text"]  # two Chinese words, no space between them
    assert dashboard.exceptions(app_page) == [] and dashboard.page_errors == []
    data = dashboard.screenshot(app_page, f"codeswitch-{lang}-{block_dir}").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
