"""summary.html, the class dashboard, for a class of 40 mixed submissions: what its first screen shows (counts,
the score distribution, the student x function heatmap that is also the sortable, filterable student table),
then the pass rates per function and per test family, then every test collapsed; the run's wall time and the
summed CPU time; "nothing graded yet" instead of empty charts. The interactions (sort, filter, expand) are
driven in headless Chromium and checked on the page's DOM.

The class is cheap: seven toy submissions are graded through the CLI (every status is among them), and their
results are copied under 40 names, as if 40 students had submitted them, before the reports are rendered.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys

import pytest

from grader.authoring import notebooks
from grader.batch import grader_failure
from grader.config import load_assignment
from grader.ingest.submissions import Submission
from grader.reports import render_reports
from grader.reports.summary import band, bin_width, family, histogram, mean_text, render_summary
from grader.results import GRADED, GRADER_ERROR, NO_SUBMISSION, NOTEBOOK_PROBLEM, Results, RunRecord
from tests.browser import Browser
from tests.conftest import TOY, run_grader, toy_notebook, write_student
from tests.test_reports import check_html, chromium

DOUBLE = "    return 2 * np.asarray(x)\n"
ROW_SUMS = "    return x.sum(axis=1)\n"
CLASS_SIZE = 40
THRESHOLD = 0.9  # a measured figure with a threshold, as keras_models' accuracies


@pytest.fixture(scope="module")
def toy_graded(tmp_path_factory):
    """Seven toy submissions graded through the CLI: full marks, two bugs, the starter, an empty notebook,
    a folder without a notebook and a notebook that raises."""
    subs, reports = tmp_path_factory.mktemp("subs"), tmp_path_factory.mktemp("graded")
    write_student(subs, "full", toy_notebook())
    write_student(subs, "rowbug", toy_notebook({ROW_SUMS: "    return x.sum(axis=1) + 1\n"}))
    write_student(subs, "doublebug", toy_notebook({DOUBLE: "    return 3 * np.asarray(x)\n"}))
    write_student(subs, "starter", notebooks.starter(notebooks.read(TOY / "toy.ipynb")))
    write_student(subs, "empty", raw="")
    (subs / "absent").mkdir()
    (subs / "absent" / "essay.pdf").write_bytes(b"%PDF-1.4")
    write_student(subs, "raises", toy_notebook({DOUBLE: "    raise ValueError('no')\n"}))
    run_grader("grade", str(TOY), str(subs), "--reports", str(reports), "--jobs", "2", "--quiet")
    return reports


@pytest.fixture(scope="module")
def toy_class(toy_graded, tmp_path_factory):
    """40 students made of the graded results (plus two grader errors), with a measured accuracy; rendered."""
    reports = tmp_path_factory.mktemp("class")
    sources = sorted(p.parent.name for p in toy_graded.glob("*/results.json"))
    for i in range(CLASS_SIZE):
        name = f"student{i:02d}"
        if i in (7, 23):
            results = grader_failure(Submission(name, None, None), "Traceback ...\nRuntimeError: the pool died")
        else:
            results = Results.read(toy_graded / sources[i % len(sources)] / "results.json")
            results.meta.student = results.meta.name = name
            results.execution_time = 0.5 + i / 10
            if results.tests:
                results.tests[0].metrics["toy_accuracy"] = round(0.8 + (i % 5) / 20, 4)
        results.write(reports / name / "results.json")
    shutil.copy(toy_graded / ".grader-run.json", reports / ".grader-run.json")
    toy = dataclasses.replace(load_assignment(TOY), thresholds={"toy_accuracy": THRESHOLD})
    render_reports(toy, reports, [f"student{i:02d}" for i in range(CLASS_SIZE)])
    return reports


def statuses(reports) -> dict[str, str]:
    return {p.parent.name: Results.read(p).status for p in reports.glob("*/results.json")}


# ---------------------------------------------------------------- the run's record and the page

def test_the_run_records_its_wall_time_and_each_submission_its_cpu_time(toy_graded):
    run = RunRecord.read(toy_graded)
    assert run is not None and run.graded == 7 and run.unchanged == 0 and run.jobs == 2 and not run.interrupted
    assert 0 < run.wall_seconds < 600 and run.finished.endswith("+00:00")
    assert json.loads((toy_graded / ".grader-run.json").read_text())["seed"]  # the seed is kept beside it
    graded = [Results.read(p) for p in toy_graded.glob("*/results.json")]
    assert {r.status for r in graded} == {GRADED, NOTEBOOK_PROBLEM, NO_SUBMISSION}
    assert all(r.meta.cpu_seconds > 0 for r in graded if r.status == GRADED)


def test_the_class_page_is_strict_offline_html_in_the_designed_order(toy_class):
    text = (toy_class / "summary.html").read_text()
    check_html(text)  # one inline script, allowed by its hash; nothing loads from the network
    assert len(text) < 300_000
    order = ["counts", "distribution", "students-table", "function-rates", "family-rates", "every-test", "problems"]
    positions = [text.index(f'id="{name}"') for name in order]
    assert positions == sorted(positions)
    assert '<details id="every-test">' in text  # collapsed by default


def test_counts_means_and_times_are_labelled(toy_class):
    text = (toy_class / "summary.html").read_text()
    counts = {status: 0 for status in (GRADED, NOTEBOOK_PROBLEM, GRADER_ERROR, NO_SUBMISSION)}
    for status in statuses(toy_class).values():
        counts[status] += 1
    for status, count in counts.items():
        assert re.search(rf"<b>{count}</b>{status}</div>", text), status
    scored = [Results.read(p) for p in toy_class.glob("*/results.json")]
    scores = [r.score for r in scored if r.status != GRADER_ERROR]
    assert re.search(rf"<b>{sum(scores) / len(scores):.1f}</b>mean score / 11</div>", text)  # one decimal
    run = RunRecord.read(toy_class)
    assert f"<b>{run.wall_seconds:.1f} s</b>wall time (last run)" in text
    cpu = sum(r.meta.cpu_seconds for r in scored)
    assert f"<b>{cpu:.1f} s</b>CPU time (sum over submissions)" in text


def test_the_heatmap_colours_points_by_their_fraction_and_links_each_row(toy_class):
    text = (toy_class / "summary.html").read_text()
    table = text[text.index('id="students-table"'):text.index("</table>", text.index('id="students-table"'))]
    rows = re.findall(r"<tr data-status=.*?</tr>", table, re.S)
    assert len(rows) == CLASS_SIZE
    for row in rows:
        student = re.search(r'<a href="(student\d\d)/feedback.html">\1</a>', row).group(1)
        assert (toy_class / student / "feedback.html").is_file()
        results = Results.read(toy_class / student / "results.json")
        cells = re.findall(r'<td class="h b-(\w+)" data-sort="([^"]*)"', row)
        if results.status == GRADER_ERROR:
            assert cells == [("na", "")] * 3
            continue
        assert [c[0] for c in cells] == [band(p / m) for p, m in zip(
            (float(c[1]) for c in cells), (4, 3, 4), strict=True)]
        assert sum(float(c[1]) for c in cells) == pytest.approx(results.score)
        accuracy = results.tests[0].metrics.get("toy_accuracy") if results.tests else None
        if accuracy is not None:
            below = " below" if accuracy < THRESHOLD else ""
            assert f'<td class="num{below}" data-sort="{accuracy}">{accuracy:.4f}</td>' in row
    assert "toy_accuracy</button> <span class=\"max\">threshold 0.9</span>" in text


def test_pass_rates_per_function_and_per_test_family_with_a_legend(toy_class):
    text = (toy_class / "summary.html").read_text()
    rates = text[text.index('id="pass-rates"'):text.index('id="tests"')]
    assert 'aria-label="Pass-rate legend"' in rates and rates.count('class="chip b-') == 5
    families = re.findall(r"<tr><td>(test_\w+)(?: <span class=\"muted\">\(hidden\)</span>)?</td><td><code>(\w+)</code>"
                          r"</td><td class=\"num\">(\d+)</td>", rates)
    assert sorted(families) == [("test_double_values", "double", "2"), ("test_relu_values_and_inputs", "relu", "1"),
                                ("test_row_sums_partial", "row_sums", "1")]
    assert family("test_double_values[matrix]") == "test_double_values"
    functions = re.findall(r"<tr><td><code>(\w+)</code></td><td class=\"num\">", rates)
    assert functions == ["double", "relu", "row_sums"]


def test_nothing_graded_yet_instead_of_empty_charts(toy):
    errors = [grader_failure(Submission(f"s{i}", None, None), "boom") for i in range(3)]
    for results in ([], errors):
        text = render_summary(toy, results)
        check_html(text)
        assert "<svg" not in text and 'class="fill' not in text and text.count("Nothing graded yet.") >= 3


def test_histogram_bins_and_precision():
    bars = histogram([0, 0, 7, 11], 11)["bars"]
    assert [b["count"] for b in bars] == [2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    wide = histogram([0, 150, 200, 200], 200)["bars"]
    assert len(wide) == 20 and wide[-1]["count"] == 2 and sum(b["count"] for b in wide) == 4
    assert [b["label"] for b in wide[:2]] == ["0–10", "10–20"]
    keras = histogram([0, 31, 35], 35)["bars"]
    assert len(keras) == 18 and keras[0]["label"] == "0–2" and [keras[i]["count"] for i in (0, 15, 17)] == [1, 1, 1]
    assert [bin_width(t) for t in (12.5, 45, 400, 480, 1000)] == [1, 5, 20, 25, 50]
    assert mean_text([1, 2, 2], 11) == "1.7" and mean_text([0.5, 0.25], 1) == "0.38" and mean_text([], 5) == "-"
    assert [band(f) for f in (0, 0.2, 0.5, 0.8, 0.99, 1)] == ["none", "low", "mid", "high", "high", "full"]


def test_rendering_the_dashboard_never_imports_matplotlib(toy_class):
    code = ("import sys; from pathlib import Path; from grader.config import load_assignment; "
            "from grader.reports.summary import write_summary; from grader.results import read_reports; "
            f"r = Path({str(toy_class)!r}); write_summary(load_assignment({str(TOY)!r}), read_reports(r), r); "
            "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------- driven in headless Chromium

ROWS = "Array.from(document.querySelectorAll('#students-table tbody tr'))"


def column(browser: Browser, index: int) -> list[str]:
    """The cells of a column in the order the page shows them (hidden rows left out)."""
    return browser.eval(f"{ROWS}.filter(r => !r.hidden).map(r => r.cells[{index}].getAttribute('data-sort') ?? "
                        f"r.cells[{index}].textContent.trim())")


def set_value(browser: Browser, element: str, value: str, event: str) -> None:
    """Type into an input or choose in a select, as a user would: the value, then the event it fires."""
    browser.eval(f"(() => {{ const e = document.getElementById({json.dumps(element)}); e.value = {json.dumps(value)}; "
                 f"e.dispatchEvent(new Event({json.dumps(event)})); }})()")


def click(browser: Browser, selector: str) -> None:
    browser.eval(f"document.querySelector({json.dumps(selector)}).click()")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Browser(chromium(), tmp_path_factory.mktemp("profile"), width=1280, height=800) as browser:
        yield browser


@pytest.fixture
def page(browser, toy_class):
    """The dashboard freshly opened in a new tab of a 1280 x 800 screen."""
    browser.open(toy_class / "summary.html")
    yield browser
    assert browser.errors() == []  # no console error: the CSP let the script run and blocked nothing


def test_the_first_screen_shows_the_distribution_the_heatmap_and_the_table(page, tmp_path):
    screen = page.eval("innerHeight")
    assert page.eval("document.querySelector('#distribution svg').getBoundingClientRect().bottom") < screen
    assert page.eval("document.getElementById('student-filter').getBoundingClientRect().bottom") < screen
    table_top = page.eval("document.querySelector('#students-table tbody').getBoundingClientRect().top")
    assert table_top < screen - 100
    visible_rows = page.eval(f"{ROWS}.filter(r => r.getBoundingClientRect().top < innerHeight).length")
    assert visible_rows >= 3
    colours = page.eval("new Set(Array.from(document.querySelectorAll('#students-table td.h'))"
                        ".map(td => getComputedStyle(td).backgroundColor)).size")
    assert colours >= 3  # the heatmap is coloured
    page.screenshot(tmp_path / "first-screen.png")


def test_sorting_by_a_column_and_back(page):
    names = column(page, 0)
    assert names == sorted(names)
    click(page, 'th button[data-column="2"]')  # Total
    assert page.eval("document.querySelector('th button[data-column=\"2\"]').closest('th').getAttribute('aria-sort')") \
        == "ascending"
    totals = column(page, 2)
    scored = [float(t) for t in totals if t != ""]
    assert scored == sorted(scored) and totals[-2:] == ["", ""]  # grader errors (no score) last
    click(page, 'th button[data-column="2"]')
    totals = column(page, 2)
    scored = [float(t) for t in totals if t != ""]
    assert scored == sorted(scored, reverse=True) and totals[-2:] == ["", ""]
    click(page, 'th button[data-column="5"]')  # row_sums points
    points = [float(p) for p in column(page, 5) if p != ""]
    assert points == sorted(points)
    click(page, 'th button[data-column="1"]')  # status, as text
    assert column(page, 1) == sorted(column(page, 1))
    assert page.eval("document.querySelectorAll('th[aria-sort]').length") == 1


def test_filtering_by_name_and_status(page, toy_class):
    set_value(page, "student-filter", "STUDENT1", "input")
    assert column(page, 0) == [f"student1{i}" for i in range(10)]
    assert page.eval("document.getElementById('students-shown').textContent") == "10 of 40 shown"
    set_value(page, "status-filter", "grader error", "change")
    assert column(page, 0) == []
    set_value(page, "student-filter", "", "input")
    expected = sorted(s for s, status in statuses(toy_class).items() if status == GRADER_ERROR)
    assert column(page, 0) == expected == ["student07", "student23"]
    assert page.eval("document.getElementById('students-shown').textContent") == "2 of 40 shown"
    set_value(page, "status-filter", "", "change")
    assert len(column(page, 0)) == CLASS_SIZE


def test_every_test_is_collapsed_until_expanded(page):
    visible = "document.querySelector('#every-test table').checkVisibility()"
    assert page.eval("document.getElementById('every-test').open") is False and page.eval(visible) is False
    click(page, "#every-test > summary")
    assert page.eval("document.getElementById('every-test').open") is True and page.eval(visible) is True
    assert page.eval("document.querySelectorAll('#every-test tbody tr').length") == 4  # 4 tests in the toy


def test_a_merge_keeps_the_longest_shard_wall_time(toy_graded, tmp_path):
    from grader.merge import merge_reports
    students = sorted(p.parent.name for p in toy_graded.glob("*/results.json"))
    for i, (wall, graded) in enumerate(((30.0, 4), (45.5, 3))):
        shard = tmp_path / f"shard{i}"
        for student in students[i * 4:(i + 1) * 4]:
            shutil.copytree(toy_graded / student, shard / student)
        RunRecord(wall_seconds=wall, graded=graded, jobs=2, finished=f"2026-01-0{i + 1}T00:00:00+00:00").write(shard)
    merge_reports([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "class")
    run = RunRecord.read(tmp_path / "class")
    assert (run.wall_seconds, run.graded, run.shards, run.finished) == (45.5, 7, 2, "2026-01-02T00:00:00+00:00")
    render_reports(load_assignment(TOY), tmp_path / "class", students)
    assert "longest of 2 shards" in (tmp_path / "class" / "summary.html").read_text()
