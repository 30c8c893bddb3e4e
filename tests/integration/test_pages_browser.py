"""The upload and job pages in a real headless Chromium, against a live API and worker."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from shared.db.models import Job
from shared.library.build import write_csv
from shared.service.auth import create_token
from shared.training.simulator import example_spec, simulate, with_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):  # .ci/run installs Debian's chromium and chromium-driver
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "dl")})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see CSP violations
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_window_size(1100, 1400)
    try:
        yield driver
    finally:
        driver.quit()


SCREENSHOTS = Path(os.environ.get("FRAUDSCORE_SCREENSHOTS", "var/screenshots"))


def test_upload_a_file_watch_it_finish_and_download_the_result(
    live_api: str,
    browser,
    worker: str,
    registered_library: Path,
    db: Session,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    upload = tmp_path / "transactions.csv"
    write_csv(simulate(with_rows(example_spec(), 2000), labeled=False), upload)
    token = create_token(db, "pat")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    browser.get(f"{live_api}/upload")
    assert "Score a file" in browser.find_element(By.TAG_NAME, "h1").text
    assert "How many rows your team can review" in browser.page_source  # options explained
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "file").send_keys(str(upload))
    browser.find_element(By.ID, "alert_rate").send_keys("0.5")  # 0.5% of rows high
    browser.save_screenshot(str(SCREENSHOTS / "upload.png"))
    browser.find_element(By.ID, "submit").click()

    WebDriverWait(browser, 30).until(ec.url_contains("/jobs/"))
    WebDriverWait(browser, 90).until(ec.visibility_of_element_located((By.ID, "done")))
    assert browser.find_element(By.ID, "state").text == "succeeded"
    assert browser.find_element(By.ID, "file-name").text == "transactions.csv"
    assert "took" in browser.find_element(By.ID, "times").text
    assert browser.find_element(By.ID, "progress").get_attribute("style") == "width: 100%;"
    stats = browser.find_element(By.ID, "stats").text
    assert "rows scored 2,000" in stats
    assert "high risk 10 0.5%" in stats  # the alert budget: 0.5% of 2,000 rows
    assert re.search(
        r"estimated fraud rate \(plausible range, without labels\) \S+% \S+% to", stats
    )
    bars = browser.find_elements(By.CSS_SELECTOR, "#risk-chart rect")
    assert len(bars) == 3 and float(bars[0].get_attribute("width")) >= 3  # 0.5% still drawn
    assert "0.5% (10 rows)" in browser.find_element(By.ID, "risk-chart").text
    levels = browser.find_element(By.ID, "levels").text
    assert levels.startswith("High: 0.5% of the rows, probability ")  # the bar's own share
    assert levels.split(". ")[0].endswith("the alert budget of the riskiest 0.5%")
    assert "Medium or above: " in levels
    _assert_readable(browser)
    histogram = browser.find_element(By.ID, "histogram")
    assert len(histogram.find_elements(By.CSS_SELECTOR, "rect")) == 10
    assert "rows (log scale)" in histogram.text and "fraud probability" in histogram.text
    riskiest = browser.find_elements(By.CSS_SELECTOR, "#riskiest tbody tr")
    assert len(riskiest) == 50
    first = riskiest[0].find_elements(By.TAG_NAME, "td")
    assert first[6].text.startswith("high") and first[7].text  # level and reasons
    assert first[1].text.startswith("T1")  # the file's transaction id
    assert "Columns the reference models use" in browser.find_element(By.ID, "columns").text
    browser.set_window_size(1100, 3600)  # the whole page in the screenshot
    browser.save_screenshot(str(SCREENSHOTS / "job.png"))
    browser.set_window_size(1100, 1400)
    job_id = browser.current_url.rsplit("/", 1)[1]

    browser.find_element(By.ID, "download").click()
    target = tmp_path / "dl" / f"{job_id}-predictions.csv"
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.read_text().splitlines()[0].startswith('"row_number"')
    assert len(target.read_text().splitlines()) == 2001

    browser.get(f"{live_api}/jobs")
    WebDriverWait(browser, 10).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, f"#jobs a[href='/jobs/{job_id}']")
    )
    row = browser.find_element(By.CSS_SELECTOR, f"#jobs a[href='/jobs/{job_id}']")
    cells = row.find_element(By.XPATH, "../..").find_elements(By.TAG_NAME, "td")
    assert [c.text for c in cells[:4]] == ["transactions.csv", "succeeded", "2,000", "10"]
    browser.save_screenshot(str(SCREENSHOTS / "jobs.png"))
    row.click()
    WebDriverWait(browser, 10).until(ec.url_contains(f"/jobs/{job_id}"))
    console = [entry["message"] for entry in browser.get_log("browser")]
    assert not [m for m in console if "Content Security Policy" in m], console


OVERLAPS = """const svg = document.getElementById("histogram");
    const texts = [...svg.querySelectorAll("text")];
    const y = texts.find((t) => t.textContent === "rows (log scale)").getBoundingClientRect();
    return texts.filter((t) => t.getAttribute("text-anchor") === "end").some((t) => {
      const b = t.getBoundingClientRect();
      return b.left < y.right && y.left < b.right && b.top < y.bottom && y.top < b.bottom;
    });"""
MILLION_ROWS = [900_000, 60_000, 20_000, 9_000, 5_000, 3_000, 1_500, 900, 400, 200]


def _assert_readable(browser) -> None:  # type: ignore[no-untyped-def]
    """Percentages without e-notation, sentences as sentences, the y label clear of its ticks
    (for this file's histogram and for a million rows' ticks)."""
    from selenium.webdriver.common.by import By

    text = browser.find_element(By.ID, "done").text
    assert not re.search(r"\de[+-]\d", text), text
    for item in browser.find_elements(By.CSS_SELECTOR, "#warnings li"):
        assert item.text[:1].isupper() and item.text.endswith("."), item.text
    blend = browser.find_element(By.ID, "blend").text
    assert all(s[:1].isupper() for s in blend.split(". ") if s), blend
    assert not browser.execute_script(OVERLAPS)
    counts = browser.execute_script(
        "const svg = document.getElementById('histogram'), old = svg.innerHTML;"
        f"fraudscore.histogram(svg, {MILLION_ROWS});"
        "const ticks = [...svg.querySelectorAll('text')].map((t) => t.textContent);"
        f"const overlap = (() => {{ {OVERLAPS} }})(); svg.innerHTML = old;"
        "return [ticks, overlap];"
    )
    assert "100,000" in counts[0] and not counts[1]


def score_on_page(browser, api: str, token: str, upload: Path, **fields: str) -> None:  # type: ignore[no-untyped-def]
    """Upload a file from the upload page (its inputs `fields` filled in) and wait until the
    job page shows it done."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{api}/upload")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "file").send_keys(str(upload))
    for field, value in fields.items():
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(ec.url_contains("/jobs/"))
    WebDriverWait(browser, 90).until(ec.visibility_of_element_located((By.ID, "done")))


def test_a_file_without_ids_shows_no_empty_columns_and_epoch_times_as_dates(
    live_api: str,
    browser,
    worker: str,
    registered_library: Path,
    db: Session,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    import numpy as np
    import pandas as pd
    from selenium.webdriver.common.by import By

    rng = np.random.default_rng(4)
    n = 3000
    frame = pd.DataFrame(
        {
            "when": 1_700_000_000 + np.sort(rng.integers(0, 30 * 86400, n)),
            "paid": rng.lognormal(3, 1, n).round(2),
            "V1": rng.normal(0, 1, n).round(4),
        }
    )
    upload = tmp_path / "no_ids.csv"
    frame.to_csv(upload, index=False)
    token = create_token(db, "pat")
    score_on_page(browser, live_api, token, upload)
    header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#riskiest thead th")]
    assert header == ["row", "amount", "time", "probability", "risk", "reasons"]
    first = browser.find_elements(By.CSS_SELECTOR, "#riskiest tbody tr")[0]
    time_cell = first.find_elements(By.TAG_NAME, "td")[2].text
    assert re.fullmatch(r"2023-1[12]-\d\d \d\d:\d\d:\d\d UTC", time_cell), time_cell
    _assert_readable(browser)
    browser.set_window_size(1100, 3600)
    browser.save_screenshot(str(SCREENSHOTS / "job-no-ids.png"))


def test_a_queued_job_page_shows_its_place_in_the_queue(  # type: ignore[no-untyped-def]
    live_api: str, browser, db: Session
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    token = create_token(db, "quinn")
    now = datetime.now(UTC)
    jobs = [
        Job(owner="quinn", input_uri="s3://x/uploads/quinn/q.csv", created_at=now + timedelta(i))
        for i in range(2)
    ]
    db.add_all(jobs)
    db.commit()
    try:
        browser.get(f"{live_api}/upload")
        browser.execute_script("localStorage.setItem('fraudscore-token', arguments[0])", token)
        browser.get(f"{live_api}/jobs/{jobs[1].id}")
        rows = browser.find_element(By.ID, "rows")
        WebDriverWait(browser, 10).until(lambda _: "ahead in the queue" in rows.text)
        ahead = int(re.search(r"([\d,]+) jobs? ahead in the queue", rows.text)[1].replace(",", ""))
        assert ahead >= 1 and browser.find_element(By.ID, "state").text == "queued"
    finally:
        for job in jobs:
            job.state = "cancelled"
        db.commit()


def test_a_wrong_token_is_reported_on_the_page(live_api: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upload = tmp_path / "t.csv"
    upload.write_text("amount\n1.5\n")
    browser.get(f"{live_api}/upload")
    browser.find_element(By.ID, "token").send_keys("fs_wrong")
    browser.find_element(By.ID, "file").send_keys(str(upload))
    browser.find_element(By.ID, "submit").click()
    message = browser.find_element(By.ID, "message")
    WebDriverWait(browser, 10).until(lambda _: "Upload failed" in message.text)
    assert "Bearer" in message.text


def test_labels_sent_from_the_job_page_train_a_team_model_shown_on_its_job_page(
    live_api: str,
    browser,
    worker: str,
    registered_library: Path,
    db: Session,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    import pandas as pd
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    spec = with_rows(example_spec(), 2000)
    label = spec.column_names()["label"]
    frame = simulate(spec)
    upload, labels = tmp_path / "outcomes-later.csv", tmp_path / "labels.csv"
    write_csv(frame.drop(columns=[label]), upload)
    pd.DataFrame({"row_number": range(1, len(frame) + 1), "fraud": frame[label]}).to_csv(
        labels, index=False
    )
    score_on_page(browser, live_api, create_token(db, "pat"), upload, expected_fraud_rate="2")
    assert (
        "expected fraud rate (as you stated it) 2.0%" in browser.find_element(By.ID, "stats").text
    )
    browser.find_element(By.ID, "labels-file").send_keys(str(labels))
    browser.find_element(By.ID, "model-name").send_keys("chargebacks")
    browser.find_element(By.ID, "send-labels").click()
    message = browser.find_element(By.ID, "labels-message")
    WebDriverWait(browser, 20).until(lambda _: "training chargebacks" in message.text)
    assert message.text.startswith("Stored 2000 labels")
    message.find_element(By.LINK_TEXT, "Follow the training job").click()
    WebDriverWait(browser, 120).until(ec.visibility_of_element_located((By.ID, "trained")))
    assert browser.find_element(By.ID, "file-name").text == "Training chargebacks"
    assert browser.find_element(By.ID, "rows").text == "2,000 of 2,000 labeled rows (100%)"
    assert browser.find_element(By.ID, "trained").text.startswith("Trained chargebacks@1: on your")
    browser.save_screenshot(str(SCREENSHOTS / "trained.png"))
