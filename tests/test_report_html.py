"""report.html: the content per task, self-containment (no URL but data: and file:), escaping, and
a headless Chromium load whose NetLog must show no request the page made to any other scheme."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from plainsight.report_html import item_images_from_run, load_run, render_html, write_html
from plainsight.report_html.charts import PLOT_H
from plainsight.report_html.page import CSP
from plainsight.scoring import wilson_interval

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_CHROMIUM_ENV = "PLAINSIGHT_REQUIRE_CHROMIUM"
EVIL_MODEL = "vlm-<script>alert(1)</script>"
TASKS = ("depth", "low_level_matching")


# ---------------------------------------------------------------------------------------------
# a synthetic run: 2 tasks; vision, vlm, blind and probe records; items with wrong answers


def _record(task: str, model: str, role: str, n: int, correct: int, letters: str, **extra) -> dict:
    lo, hi = wilson_interval(correct, n)
    share = round(1 / len(letters), 6)
    record = {
        "task": task, "model": model, "role": role, "n": n, "correct": correct,
        "accuracy": round(correct / n, 6), "chance": share, "chance_floor": share,
        "ci95": [round(lo, 6), round(hi, 6)], "answer_dist": {c: share for c in letters},
        "gold_dist": {c: share for c in letters}, "tv_to_gold": 0.0, "tv_to_blind": None,
        "blind_accuracy": None, "paired_with": None, "verdict": "pass", "reason": "", "invalid": 0,
        "ties": 0, "parse_failures": 0, "smoke": False,
    }  # fmt: skip
    record.update(extra)
    return record


def synthetic_results() -> dict:
    records = [
        _record("depth", "enc-a", "vision", 120, 102, "AB"),
        _record("depth", "pixels", "vision", 120, 80, "AB"),
        _record(
            "depth",
            EVIL_MODEL,
            "vlm",
            120,
            38,
            "AB",
            paired_with="enc-a",
            vision_accuracy=0.85,
            gap_to_vision=0.533333,
            mcnemar_p=0.0001,
            answer_dist={"A": 0.9, "B": 0.1},
            blind_answer_dist={"A": 0.7, "B": 0.3},
            tv_to_gold=0.4,
            tv_to_blind=0.2,
            blind_accuracy=0.5,
            verdict="fail",
            reason="gap to vision 0.533 > 0.10",
        ),  # fmt: skip
        _record("depth", EVIL_MODEL, "blind", 120, 60, "AB", verdict="skip", reason="control run"),
        _record(
            "depth",
            EVIL_MODEL,
            "probe",
            120,
            90,
            "AB",
            best_layer=2,
            layer_series=[
                {
                    "layer": i,
                    "point": "pre-LLM" if i == 0 else f"LLM layer {i}",
                    "n": 120,
                    "correct": c,
                    "accuracy": round(c / 120, 6),
                }
                for i, c in enumerate([70, 84, 90, 66, 61])
            ],
        ),  # fmt: skip
        _record("low_level_matching", "enc-a", "vision", 150, 93, "ABCD"),
        _record(
            "low_level_matching",
            "tiny-vlm",
            "vlm",
            150,
            45,
            "ABCD",
            paired_with="enc-a",
            smoke=True,
            blind_answer_dist={"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25},
            tv_to_blind=0.1,
            blind_accuracy=0.26,
            verdict="xfail",
            reason="known gap",
        ),  # fmt: skip
        _record("low_level_matching", "tiny-vlm", "blind", 150, 39, "ABCD", smoke=True, verdict="skip"),
    ]
    metadata = {"created": "2030-01-02T03:04:05+00:00", "seed": 7, "git_commit": "abc123def",
                "versions": {"python": "3.11.7", "torch": "2.14.1"},
                "options": {"data_root": "embedded", "data_source": None}}  # fmt: skip
    return {"schema": "plainsight.results/1", **metadata, "results": records}


def _item(task, model, role, item, gold, pred, correct, scores, reason=None, detail=None) -> dict:
    return {"task": task, "model": model, "role": role, "item": item, "gold": gold, "pred": pred,
            "correct": correct, "reason": reason, "detail": detail, "scores": scores}  # fmt: skip


def synthetic_items() -> list[dict]:
    return [
        _item("depth", EVIL_MODEL, "vlm", "d-1", "A", "B", False, {"A": -2.5, "B": -0.125}),
        _item("depth", EVIL_MODEL, "vlm", "d-2", "B", "B", True, {"A": -3.0, "B": -0.5}),
        _item("depth", EVIL_MODEL, "vlm", "d-10", "B", None, False, {"A": -1.0, "B": -1.0}, reason="tie"),
        _item(
            "depth",
            EVIL_MODEL,
            "vlm",
            "d-3",
            "A",
            None,
            False,
            None,
            reason="parse_failure",
            detail="answered 'maybe <b>'",
        ),  # fmt: skip
        _item("depth", "enc-a", "vision", "d-4", "A", "B", False, {"A": 0.1, "B": 0.9}),
        _item("depth", EVIL_MODEL, "blind", "d-5", "A", "B", False, {"A": -9.0, "B": -0.01}),
        _item(
            "low_level_matching",
            "tiny-vlm",
            "vlm",
            "m-1",
            "C",
            "A",
            False,
            {"A": -0.5, "B": -2.0, "C": -1.75, "D": -3.0},
        ),  # fmt: skip
    ]


def tiny_png(colour=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def synthetic_images(task: str, model: str, item_id: str) -> bytes | None:
    return tiny_png() if item_id in ("d-1", "m-1") else None


# ---------------------------------------------------------------------------------------------
# checks shared by the synthetic and the real run


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <style> elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _sections(html: str) -> dict[str, str]:
    """Task → the HTML of its <section> (the findings section, which spans the tasks, left out)."""
    out = {}
    for chunk in html.split("<section ")[1:]:
        if chunk.startswith('id="findings"'):
            continue
        task = re.search(r"<h2>(.*?)</h2>", chunk).group(1)
        out[task] = chunk.split("</section>")[0]
    return out


def check_self_contained(html: str, n_tasks: int) -> None:
    parser = _parse(html)
    assert html.count('<svg class="task-figure"') == n_tasks
    assert sum(1 for tag, a in parser.tags if tag == "svg" and a.get("class") == "task-figure") == n_tasks
    csp = [a for tag, a in parser.tags if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0]["content"] == CSP
    urls = [v for _, a in parser.tags for k, v in a.items() if k in ("src", "href", "xlink:href", "action") and v]
    urls += re.findall(r"url\(\s*['\"]?([^'\")]*)", "".join(parser.styles) + html)
    for url in urls:
        assert not re.match(r"(?i)\s*(https?:|//)", url), url
        assert url.startswith(("#", "data:")), url
    assert not re.search(r"(?i)https?://|[\"'(=]\s*//", html)
    imgs = [a for tag, a in parser.tags if tag == "img"]
    assert all((a.get("src") or "").startswith("data:image/png;base64,") for a in imgs)
    assert not re.search(r"(?i)<script|<iframe|<link|<object|<embed|@import|@font-face", html)


# ---------------------------------------------------------------------------------------------
# the synthetic run


@pytest.fixture(scope="module")
def synthetic_html() -> str:
    return render_html(synthetic_results(), synthetic_items(), item_images=synthetic_images)


def test_one_figure_per_task_and_no_external_url(synthetic_html: str):
    check_self_contained(synthetic_html, n_tasks=2)
    assert list(_sections(synthetic_html)) == list(TASKS)
    assert synthetic_html.count('<section id="findings">') == 1 and '<svg class="findings-figure"' in synthetic_html
    for task in TASKS:
        assert f'href="#task-{task}"' in synthetic_html and f'id="task-{task}"' in synthetic_html


def test_the_url_check_can_fail():
    good = render_html(synthetic_results(), [])
    for bad in ('<img src="http://example.invalid/x.png">', '<img src="//example.invalid/x.png">',
                '<div style="background:url(https://example.invalid/x.png)"></div>', '<img src="x.png">'):  # fmt: skip
        with pytest.raises(AssertionError):
            check_self_contained(good.replace("</body>", bad + "</body>"), n_tasks=2)


def test_data_text_is_escaped(synthetic_html: str):
    assert "<script" not in synthetic_html.lower()
    assert "vlm-&lt;script&gt;alert(1)&lt;/script&gt;" in synthetic_html
    assert "answered &#x27;maybe &lt;b&gt;&#x27;" in synthetic_html


def test_the_figure_shows_the_records_numbers(synthetic_html: str):
    depth = _sections(synthetic_html)["depth"]
    figure = depth.split('<svg class="task-figure"')[1].split("</svg>")[0]
    vlm = next(r for r in synthetic_results()["results"] if r["role"] == "vlm" and r["task"] == "depth")
    lo, hi = vlm["ci95"]
    assert f"(vlm): 31.7% [{100 * lo:.1f}%, {100 * hi:.1f}%], 38/120" in figure
    assert ">31.7%</text>" in figure and f'height="{vlm["accuracy"] * PLOT_H:.1f}"' in figure
    for label in ("85.0%", "50.0%", "75.0%", "66.7%", "chance 50.0%"):  # vision, blind, probe best, pixels, chance
        assert label in figure, label
    assert 'stroke-dasharray="6 4"' in figure  # the dashed chance line
    assert "vs enc-a" in figure and ">pixels</text>" in figure  # the unpaired encoder has its own group
    table = depth.split('<table class="records">')[1]
    assert ">0.317<" in table and f"[{lo:.2f}, {hi:.2f}]" in table and "gap to vision 0.533 &gt; 0.10" in table
    assert 'class="verdict verdict-fail"' in table
    llm = _sections(synthetic_html)["low_level_matching"]
    assert "tiny-vlm (smoke)" in llm and ">30.0%</text>" in llm


def test_answer_distributions_and_tv(synthetic_html: str):
    depth = _sections(synthetic_html)["depth"]
    assert depth.count('class="dist-figure"') == 1
    assert "TV(pred, gold) = 0.400" in depth and "TV(pred, blind) = 0.200" in depth
    assert "VLM A: 90.0%" in depth and "gold A: 50.0%" in depth and "blind B: 30.0%" in depth


def test_layer_curve_only_where_a_probe_has_a_series(synthetic_html: str):
    sections = _sections(synthetic_html)
    assert sections["depth"].count('class="layer-figure"') == 1
    assert 'class="layer-figure"' not in sections["low_level_matching"]
    curve = sections["depth"].split('class="layer-figure"')[1].split("</svg>")[0]
    assert curve.count("<circle") == 5 + 1  # 5 points and the ring on the best one
    assert "pre-LLM: 58.3% (70/120)" in curve and "best: LLM layer 2 75.0%" in curve
    assert "<polygon" in curve and "chance 50.0%" in curve


def test_failed_items_browser(synthetic_html: str):
    depth = _sections(synthetic_html)["depth"]
    browser = depth.split('<details class="failures"')[1]
    assert "3 wrong items" in browser
    assert [m for m in re.findall(r"<summary>(d-\d+) ", browser)] == ["d-1", "d-3", "d-10"]  # natural order
    assert "d-1 — gold A, predicted B" in browser and "d-10 — gold B, no prediction (tie)" in browser
    assert "d-3 — gold A, no prediction (parse_failure)" in browser and "no scores recorded" in browser
    assert '<tr class="gold"><td>A</td><td class=num>-2.5</td>' in browser
    assert '<tr class="pred"><td>B</td><td class=num>-0.125</td>' in browser
    assert "d-2" not in browser and "d-4" not in browser and "d-5" not in browser  # right, vision, blind
    assert browser.count("<img ") == 1 and "data:image/png;base64," in browser
    llm = _sections(synthetic_html)["low_level_matching"]
    assert '<tr class="gold"><td>C</td><td class=num>-1.75</td>' in llm


def test_max_failures_and_failing_image_sources():
    def images(task, model, item_id):
        if item_id == "d-10":
            raise OSError("dataset gone")
        return b"not a png" if item_id == "d-3" else tiny_png()

    html = render_html(synthetic_results(), synthetic_items(), item_images=images, max_failures=2)
    depth = _sections(html)["depth"]
    assert "3 wrong items (first 2 shown)" in depth and "d-10" not in depth
    assert "not a PNG" in depth
    html = render_html(synthetic_results(), synthetic_items(), item_images=images, max_failures=5)
    assert "image unavailable: OSError: dataset gone" in html


def test_header_metadata_toc_and_determinism(synthetic_html: str):
    for text in ("2030-01-02T03:04:05+00:00", ">7<", "abc123def", "python 3.11.7", "embedded"):
        assert text in synthetic_html.split("<nav")[0], text
    nested = synthetic_results()
    nested = {"schema": nested["schema"], "results": nested.pop("results"), "metadata": nested}
    assert render_html(nested, synthetic_items(), item_images=synthetic_images) == synthetic_html
    assert render_html(synthetic_results(), synthetic_items(), item_images=synthetic_images) == synthetic_html


def test_write_html_is_atomic_and_load_run_reads_a_folder(tmp_path: Path):
    (tmp_path / "results.json").write_text(json.dumps(synthetic_results()))
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in synthetic_items()))
    results, items = load_run(tmp_path)
    path = write_html(tmp_path, results, items, item_images=synthetic_images)
    assert path == tmp_path / "report.html"
    assert path.read_text() == render_html(synthetic_results(), synthetic_items(), item_images=synthetic_images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl", "report.html", "results.json"]


# ---------------------------------------------------------------------------------------------
# a real small run (model doubles, 6 items, one task) through pytest


DOUBLES = """
[models.pixels]
kind = "encoder"
source = "pixels"

[models.constant-a]
kind = "vlm"
source = "double:constant-a"
pairs_with = "pixels"

[models.tying]
kind = "vlm"
source = "double:tying"
pairs_with = "pixels"
"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("real-run")
    (folder / "models.toml").write_text(DOUBLES)
    (folder / "thresholds.toml").write_text("[defaults.vision]\nabove_chance = true\n")
    report_dir = folder / "report"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "evals/test_correspondence.py",
         f"--model-config={folder / 'models.toml'}", f"--thresholds={folder / 'thresholds.toml'}",
         f"--report-dir={report_dir}", "--limit=6", "--tasks=low_level_matching"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if not (report_dir / "results.json").is_file():
        pytest.fail(
            f"the small eval run wrote no results.json in {report_dir}:\n{run.stdout[-3000:]}{run.stderr[-2000:]}"
        )
    return report_dir


def test_real_small_run(real_run: Path):
    results, items = load_run(real_run)
    path = write_html(real_run, results, items, item_images=item_images_from_run(results))
    html = path.read_text()
    tasks = sorted({r["task"] for r in results["results"]})
    check_self_contained(html, n_tasks=len(tasks))
    sections = _sections(html)
    for record in results["results"]:
        if record["role"] in ("vision", "vlm", "blind") and record["n"]:
            figure = sections[record["task"]].split('<svg class="task-figure"')[1].split("</svg>")[0]
            lo, hi = record["ci95"]
            label = record["model"] + (" (smoke)" if record.get("smoke") else "")
            tip = (f"{label} ({record['role']}): {100 * record['accuracy']:.1f}% "
                   f"[{100 * lo:.1f}%, {100 * hi:.1f}%], {record['correct']}/{record['n']}")  # fmt: skip
            assert tip in figure, tip
    wrong = [i for i in items if i["role"] == "vlm" and not i["correct"]]
    assert wrong and any(i["reason"] == "tie" for i in wrong)
    for line in wrong:
        assert f"<summary>{line['item']} — gold {line['gold']}" in html
    assert html.count('<img class="item-image"') == len(wrong)
    assert "image unavailable" not in html


# ---------------------------------------------------------------------------------------------
# headless Chromium: the page loads, renders, and asks the network for nothing


def _need_chromium() -> None:
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} not found: install it with `apt-get install chromium`"
        if os.environ.get(REQUIRE_CHROMIUM_ENV):
            pytest.fail(f"{message} (${REQUIRE_CHROMIUM_ENV} is set)")
        pytest.skip(message)


def _start_chromium(page: Path, work: Path, *action: str) -> subprocess.Popen:
    work.mkdir(parents=True)
    return subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # fewer of Chromium's own background requests (they are told apart below in any case)
         "--disable-features=NetworkTimeServiceQuerying,AimEligibilityService,AimEnabled,AimServerEligibilityEnabled",
         f"--user-data-dir={work / 'profile'}", f"--log-net-log={work / 'netlog.json'}",
         "--window-size=1280,2000", *action, page.as_uri()],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("chromium did not finish within 60 s")
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return out


def _load_netlog(path: Path) -> dict:
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # a log cut short lacks its closing brackets
        return json.loads(text.rstrip().rstrip(",") + "]}")


def page_requests(netlog: dict) -> tuple[list[str], list[str]]:
    """(what the page asked for, what Chromium itself asked for), read from a NetLog.

    The page's requests: ``URL_REQUEST_START_JOB`` events whose ``params.initiator`` is a document
    origin (a file:// page's origin prints as "null"), and ``HOST_RESOLVER_MANAGER_REQUEST``
    lookups (``params.host``) keyed to the page's site (``params.network_anonymization_key``
    "file://…": dns-prefetch, preconnect). Chromium's own background fetches carry the
    initiator "not an origin". file: and data: loads never reach the network stack.
    """
    names = {code: name for name, code in netlog["constants"]["logEventTypes"].items()}
    page, browser = [], []
    for event in netlog["events"]:
        params = event.get("params") or {}
        kind = names.get(event["type"])
        if kind == "URL_REQUEST_START_JOB" and "url" in params:
            (browser if params.get("initiator") == "not an origin" else page).append(params["url"])
        elif kind == "HOST_RESOLVER_MANAGER_REQUEST" and "host" in params:
            key = str(params.get("network_anonymization_key", ""))
            (page if key.startswith("file:") else browser).append(params["host"])
    return page, browser


def _off_page_schemes(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.lower().startswith(("file:", "data:"))]


def test_chromium_loads_the_report_offline(tmp_path: Path):
    _need_chromium()
    report = write_html(tmp_path / "report", synthetic_results(), synthetic_items(), item_images=synthetic_images)
    # The same page without its CSP: its own markup must ask for nothing either (not merely be blocked).
    bare = tmp_path / "bare" / "report.html"
    bare.parent.mkdir()
    bare.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", report.read_text()))
    assert "Content-Security-Policy" not in bare.read_text()
    # The control: a page that does fetch over http must be caught by the same NetLog reading.
    control = tmp_path / "control" / "bad.html"
    control.parent.mkdir()
    control.write_text('<!DOCTYPE html><html><body><p>bad</p><img src="http://example.invalid/x.png"></body></html>')

    shot = tmp_path / "shot.png"
    runs = {
        "report": _start_chromium(report, tmp_path / "run-report", f"--screenshot={shot}"),
        "bare": _start_chromium(bare, tmp_path / "run-bare", "--dump-dom"),
        "control": _start_chromium(control, tmp_path / "run-control", "--dump-dom"),
    }
    outputs = {name: _finish(proc) for name, proc in runs.items()}
    logs = {name: _load_netlog(tmp_path / f"run-{name}" / "netlog.json") for name in runs}

    assert all(log["events"] for log in logs.values()), "chromium wrote an empty NetLog"
    control_page, _ = page_requests(logs["control"])
    assert "http://example.invalid/x.png" in control_page, "the NetLog reading misses a page's http request"
    for name in ("report", "bare"):
        page, browser = page_requests(logs[name])
        assert not _off_page_schemes(page), f"{name}: the page made requests {page} (Chromium's own: {browser})"

    dom = outputs["bare"]
    assert dom.count('<svg class="task-figure"') == len(TASKS)
    assert "<script" not in dom.lower() and "&lt;script&gt;" in dom

    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2000)
    histogram = image.histogram()
    assert histogram[255] < 0.97 * image.width * image.height, "the screenshot is (nearly) blank"
    assert sum(1 for count in histogram if count) > 20


def test_missing_chromium_skips_naming_the_fix_unless_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv(REQUIRE_CHROMIUM_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        _need_chromium()
    monkeypatch.setenv(REQUIRE_CHROMIUM_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        _need_chromium()


def test_skipped_and_missing_runs_render_as_placeholders():
    skipped = {"task": "depth", "model": "big-vlm", "role": "vlm", "n": 0, "correct": 0, "accuracy": None,
               "chance": None, "chance_floor": None, "ci95": [None, None], "answer_dist": {}, "gold_dist": {},
               "tv_to_gold": None, "tv_to_blind": None, "blind_accuracy": None, "paired_with": None,
               "verdict": "skip", "reason": "model big-vlm unavailable: no weights"}  # fmt: skip
    html = render_html({"results": [skipped]}, [])
    check_self_contained(html, n_tasks=1)
    figure = html.split('<svg class="task-figure"')[1].split("</svg>")[0]
    assert figure.count(">n/a</text>") == 2 and "model big-vlm unavailable: no weights" in figure
    assert "0 wrong items" in html and "No wrong items." in html
