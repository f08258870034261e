"""`emoprobe view`: the page's data and escaping, and the page itself in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from browser import Chromium, find_chromium
from face_runs import HOSTILE, LABELS_CSV, emoprobe, make_face_runs
from PIL import Image

from emoprobe.reporting.view_images import image_link
from emoprobe.reporting.viewer import share_images
from emoprobe.results.index import read_run

READY = "document.body.dataset.ready === '1'"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_face_runs(tmp_path_factory.mktemp("view") / "reports")


@pytest.fixture(scope="module")
def three_run_page(runs) -> Path:
    out = runs["qwen"].parent / "view.html"
    result = emoprobe("view", runs["qwen"], runs["llama"], runs["qwen-logprobs"], "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    return out


def page_data(page: Path) -> dict:
    match = re.search(
        r'<script id="data" type="application/json">(.*?)</script>', page.read_text(), re.S
    )
    assert match
    return json.loads(match.group(1))


def test_the_page_is_self_contained_and_links_images_without_embedding_them(three_run_page):
    text = three_run_page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?https?:""", text)  # no CDN, no network
    assert "data:image" not in text and "base64" not in text
    data = page_data(three_run_page)
    assert data["mode"] == "linked" and 'data-mode="linked"' in text
    assert len(data["paths"]) == 20 and len(data["runs"]) == 3
    for path, link in zip(data["paths"], data["images"], strict=True):
        assert (three_run_page.parent / link).resolve() == (LABELS_CSV.parent / path).resolve()
    assert data["runs"][2]["scores"] and data["runs"][0]["scores"] is None


def test_an_answer_with_html_cannot_close_the_script_or_run(three_run_page):
    text = three_run_page.read_text(encoding="utf-8")
    assert text.count("</script>") == 2  # the data blob's end and the code's end
    assert "<img src=x" not in text
    data = page_data(three_run_page)
    assert HOSTILE in data["strings"]  # kept as text, exactly


def test_paired_statistics_head_the_page(three_run_page):
    text = three_run_page.read_text(encoding="utf-8")
    assert "Paired, on the 20 images every run scored" in text  # unparsed answers count
    # llama is wrong on persons 006, 012, 030 and 042 (ids divisible by 3), both photos each
    assert "<td>qwen</td><td>llama</td><td>8</td><td>0</td><td>0.0078</td>" in text
    assert "<td>qwen</td><td>qwen-logprobs</td><td>0</td><td>0</td><td>1.0000</td>" in text


def test_thumbnails_are_an_explicit_opt_in_without_exif(runs, tmp_path):
    out = tmp_path / "shared.html"
    result = emoprobe("view", runs["qwen"], "--embed-thumbnails", "--out", out)
    assert result.exit_code == 0, result.output
    data = page_data(out)
    assert data["mode"] == "embedded" and "it holds faces" in out.read_text()
    assert all(src.startswith("data:image/jpeg;base64,") for src in data["images"])
    jpeg = base64.b64decode(data["images"][0].split(",", 1)[1])
    assert len(jpeg) < 10_000
    with Image.open(io.BytesIO(jpeg)) as image:
        assert max(image.size) <= 96 and not image.getexif() and "comment" not in image.info


def test_runs_on_different_images_show_the_shared_ones(runs, tmp_path):
    part = tmp_path / "part"
    shutil.copytree(runs["llama"], part)
    lines = (part / "predictions.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (part / "predictions.csv").write_text("".join(lines[:-5]), encoding="utf-8")
    shared = share_images([read_run(runs["qwen"]), read_run(part)])
    assert len(shared.keys) == 15 and shared.left_out == [5, 0]
    out = tmp_path / "view.html"
    result = emoprobe("view", runs["qwen"], part, "--out", out)
    assert result.exit_code == 0, result.output
    assert "15 images every run has are shown" in result.output
    assert "left out because another run lacks them — qwen: 5" in out.read_text()


def test_bad_input_is_one_line(runs, tmp_path):
    not_a_run = emoprobe("view", tmp_path)
    assert not_a_run.exit_code == 1
    assert (
        not_a_run.output.strip() == f"error: {tmp_path} is not an emoprobe run folder "
        "(no manifest.json)"
    )
    twice = emoprobe("view", runs["qwen"], runs["qwen"])
    assert twice.exit_code == 2 and "given twice" in twice.output
    other = tmp_path / "other"
    shutil.copytree(runs["llama"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["task"]["labels"] = ["smiling", "neutral"]
    (other / "manifest.json").write_text(json.dumps(manifest))
    mixed = emoprobe("view", runs["qwen"], other)
    assert mixed.exit_code == 1 and "different tasks" in mixed.output
    assert len(mixed.output.strip().splitlines()) == 1


def test_links_are_relative_to_the_page(tmp_path):
    assert image_link(tmp_path / "data" / "a b.jpg", tmp_path / "reports") == "../data/a%20b.jpg"


# -- in a real browser -------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium); page tests need it")
    with Chromium() as chromium:
        yield chromium


def shown(browser: Chromium) -> dict:
    return browser.evaluate(
        """(() => ({
        count: document.getElementById('count').textContent,
        rows: Array.from(document.querySelectorAll('#rows .row')).map(row => ({
          path: row.querySelector('.path').textContent,
          truth: row.querySelector('.truth').textContent,
          preds: Array.from(row.querySelectorAll('.pred')).map(e => e.textContent),
          answers: Array.from(row.querySelectorAll('.answer')).map(e => e.textContent),
        })),
      }))()"""
    )


def test_clicking_a_confusion_cell_shows_just_those_images(browser, three_run_page):
    browser.open(three_run_page.as_uri(), ready=READY)
    assert shown(browser)["count"] == "20 of 20 images"
    # run 1 is qwen: the happy row, unparsed column holds the one hostile happy face
    browser.click('#matrix td.cell[data-t="0"][data-p="2"]')
    page = shown(browser)
    assert page["count"] == "1 of 20 images"
    assert [row["path"] for row in page["rows"]] == ["happy/025.jpg"]
    assert page["rows"][0]["answers"] == [HOSTILE] * 3  # shown as text, exactly
    assert browser.evaluate("document.querySelectorAll('#rows img[src=x]').length") == 0
    assert browser.evaluate("document.title") != "pwned"
    assert browser.evaluate("document.querySelector('#matrix td.sel').textContent") == "1"
    browser.click('#matrix td.cell[data-t="0"][data-p="2"]')  # again: the filter is off
    assert shown(browser)["count"] == "20 of 20 images"
    assert browser.console_errors == []


def test_text_status_and_disagreement_filters(browser, three_run_page, tmp_path):
    browser.open(three_run_page.as_uri(), ready=READY)
    browser.choose("#run", "1")  # llama
    browser.click('#matrix td.cell[data-t="1"][data-p="0"]')  # neutral called happy
    page = shown(browser)
    assert page["count"] != "0 of 20 images"
    assert all(row["truth"] == "true: neutral" for row in page["rows"])
    assert all(row["preds"][1] == "happy" for row in page["rows"])
    browser.click("#clear")
    browser.type_text("#search", "smiling")
    browser.wait_for("document.getElementById('count').textContent !== '20 of 20 images'")
    page = shown(browser)
    assert page["rows"]
    assert all("smiling" in " ".join(row["answers"]).lower() for row in page["rows"])
    browser.click("#clear")
    browser.choose("#status", "unparsed")
    page = shown(browser)
    assert page["count"] == "2 of 20 images"
    assert all(row["preds"][1] == "unparsed" for row in page["rows"])
    browser.click("#clear")
    browser.choose("#disagree", "on")
    page = shown(browser)
    assert page["rows"] and all(len(set(row["preds"])) > 1 for row in page["rows"])
    browser.click("#clear")
    browser.choose("#run", "2")
    browser.choose("#sort", "conf-desc")
    confidences = browser.evaluate(
        "Array.from(document.querySelectorAll('#rows .row')).map(r => +r.dataset.index)"
        ".map(i => D.runs[2].conf[i]).filter(c => c >= 0)"
    )
    assert confidences and confidences == sorted(confidences, reverse=True)
    shot = browser.screenshot(tmp_path / "view.png")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert browser.console_errors == []
