"""Take docs/explore.png from the real page: the shipped networks, a test image, one LSD slider moved and its strip.

    python docs/screenshot_explore.py [--cache DIR] [--out docs/explore.png]

Needs Debian's chromium and chromium-driver and the test extras (selenium); serves on a free loopback port.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from latentspectra.config import ExploreConfig
from latentspectra.explore import bind, create_app, open_session, serving

TEST_IMAGE, DIRECTION, AMOUNT = 3, 7, 2.5  # a test "0", moved along the quasi-eigenvector of label 7


def wait(driver: webdriver.Chrome, script: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not driver.execute_script(f"return {script};"):
        if time.monotonic() > deadline:
            raise SystemExit(f"the page did not get to: {script}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=None, help="the explore cache (default: the command's)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("explore.png")))
    args = parser.parse_args()
    session = open_session(ExploreConfig(), cache_root=args.cache, progress=True, say=print)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--window-size=1500,1000", "--hide-scrollbars"):
        options.add_argument(flag)
    with serving(create_app(session), bind("127.0.0.1", 0)) as url:
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(url)
            wait(driver, "document.body.dataset.ready === 'true'")
            driver.find_element(By.ID, "test-index").clear()
            driver.find_element(By.ID, "test-index").send_keys(str(TEST_IMAGE))
            driver.find_element(By.ID, "test-load").click()
            wait(driver, f"document.getElementById('input-caption').textContent === 'test image {TEST_IMAGE}'")
            slider = driver.find_element(By.CSS_SELECTOR, f"#sliders input[data-direction='{DIRECTION}']")
            driver.execute_script("arguments[0].value = arguments[1];"
                                  "arguments[0].dispatchEvent(new Event('input'));", slider, AMOUNT)
            driver.find_elements(By.CSS_SELECTOR, "#sliders button")[DIRECTION].click()
            wait(driver, "document.querySelectorAll('#strip img').length > 0")
            time.sleep(0.5)
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
    session.methods.close()
    print(args.out)


if __name__ == "__main__":
    main()
