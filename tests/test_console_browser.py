"""The console in a real headless Chromium from Debian (chromium + chromium-driver, driven by Selenium;
no browser download): sign in, create an account with protocols, suspend it and see a phone refused,
toggle a group member (htmx), share a folder at level 4, wipe a phone through its next Provision.
Screenshots go to var/test-artifacts/console/ (the path is printed)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oxsync.eas.wbxml import E
from oxsync.model import Module, Protocol
from oxsync.model.permissions import level_for_rights
from oxsync.store import accounts
from oxsync.store.folders import default_folder_id
from tests.consolehelp import PASSWORDS, ConsoleWorld, build_console_world
from tests.eas_client import EasClient

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = "install Debian's Chromium and its driver: apt-get install chromium chromium-driver (or `make sysdeps`)"
ARTIFACTS = Path(__file__).resolve().parents[1] / "var" / "test-artifacts" / "console"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1400,1000")
WAIT_SECONDS = 20.0


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[object]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"no {CHROMIUM} or {CHROMEDRIVER}: {INSTALL_HINT}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: pip install -e '.[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def cw(store, live_server) -> ConsoleWorld:  # type: ignore[no-untyped-def]
    return build_console_world(store, live_server)


class Shots:
    def __init__(self, driver, backend: str) -> None:  # type: ignore[no-untyped-def]
        self.driver = driver
        self.dir = ARTIFACTS / backend
        self.dir.mkdir(parents=True, exist_ok=True)
        self.count = 0
        print(f"\nconsole screenshots: {self.dir}")

    def __call__(self, name: str) -> Path:
        self.count += 1
        path = self.dir / f"{self.count:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def _wait(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition (the browser works asynchronously); bounded, no fixed sleeps in assertions."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )

    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (StaleElementReferenceException, NoSuchElementException):
            pass  # the element is being swapped or not there yet
        except WebDriverException as exc:  # chromedriver's own words for an element htmx just swapped out
            if "does not belong to the document" not in str(exc):
                raise
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _phone(cw: ConsoleWorld, login: str, device: str) -> EasClient:
    phone = EasClient(cw.http_port, login, PASSWORDS.get(login, ""), device_id=device)
    return phone


def _folder_sync(phone: EasClient):  # type: ignore[no-untyped-def]
    return phone.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0")))


def test_console_in_chromium(chrome, cw: ConsoleWorld, backend: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d = chrome
    shot = Shots(d, backend)
    find = d.find_element
    t = cw.tenant

    # sign in
    d.get(cw.url + "/lang/en?back=/login")
    find(By.ID, "login").send_keys("alice")
    find(By.ID, "password").send_keys(PASSWORDS["alice"])
    shot("sign-in")
    find(By.ID, "sign-in").click()
    _wait(lambda: d.current_url.endswith(f"/t/{t}"), "the tenant home")
    assert "4 created" in find(By.ID, "usage").text
    shot("home")

    # create an account with protocols (mobile + DAV, no Outlook)
    d.get(cw.url + f"/t/{t}/accounts/new")
    find(By.ID, "f-login").send_keys("henri")
    find(By.ID, "f-display-name").send_keys("Henri <script>alert(1)</script>")
    for proto in ("outlook", "imap"):
        box = d.find_elements(By.ID, f"f-proto-{proto}")
        if box and box[0].is_selected():
            box[0].click()
    shot("new-account-form")
    find(By.ID, "create-account").click()
    _wait(lambda: d.find_elements(By.ID, "new-password"), "the created account")
    password = find(By.CSS_SELECTOR, "#new-password code").text
    assert find(By.ID, "account-name").text == "Henri <script>alert(1)</script>"  # shown as text, not run
    shot("account-created")
    with cw.store.transaction(t) as tx:
        henri = accounts.get_user(tx, accounts.find_user_id(tx, "henri") or -1)
    assert henri.protocols == {Protocol.MOBILE, Protocol.DAV}
    phone = EasClient(cw.http_port, "henri", password, device_id="HENRIPHONE")
    phone.provision()
    assert _folder_sync(phone).status == 200

    # suspend it from the accounts table (htmx swaps the row): the phone's next request is refused
    d.get(cw.url + f"/t/{t}/accounts?q=henri")
    row = find(By.ID, f"account-{henri.id}")
    row.find_element(By.CSS_SELECTOR, "button.status-toggle").click()
    _wait(lambda: find(By.ID, f"account-{henri.id}").find_elements(By.CSS_SELECTOR, ".dot.suspended"),
          "the suspended dot")
    assert d.current_url.endswith("q=henri")  # swapped in place, no page load
    shot("account-suspended")
    assert _folder_sync(phone).status == 403

    # toggle a group member ON
    d.get(cw.url + f"/t/{t}/groups/{cw.team}")
    find(By.ID, "toggle-carol").click()
    _wait(lambda: find(By.ID, "toggle-carol").get_attribute("aria-pressed") == "true", "carol's toggle ON")
    with cw.store.transaction(t) as tx:
        assert cw.ids["carol"] in accounts.get_group(tx, cw.team).members
    shot("group-member-on")

    # share bob's contacts with carol at Outlook level 4
    with cw.store.transaction(t) as tx:
        contacts = default_folder_id(tx, cw.ids["bob"], Module.CONTACT)
    d.get(cw.url + f"/t/{t}/accounts/{cw.ids['bob']}/folders")
    section = find(By.ID, f"folder-{contacts}")
    Select(section.find_element(By.CSS_SELECTOR, "select.share-who")).select_by_visible_text("carol")
    Select(section.find_element(By.CSS_SELECTOR, "select.share-level")).select_by_value("4")
    section.find_element(By.CSS_SELECTOR, "button.share-button").click()
    carol_level = f'#folder-{contacts} tr.perm[data-who="carol"] td.level'  # not the form's options
    _wait(lambda: [c for c in d.find_elements(By.CSS_SELECTOR, carol_level) if c.text == "4 · Author"],
          "carol's level-4 entry")
    with cw.store.session(t, cw.ids["carol"]) as session:
        assert level_for_rights(session.rights(contacts)) == 4
    shot("folder-shared-level-4")

    # wipe bob's phone: its next Provision wipes it, and the console shows it
    bob_phone = EasClient(cw.http_port, "bob", PASSWORDS["bob"], device_id="BOBPHONE")
    bob_phone.provision()
    assert _folder_sync(bob_phone).status == 200
    d.get(cw.url + f"/t/{t}/devices")
    find(By.LINK_TEXT, "BOBPHONE").click()
    _wait(lambda: d.find_elements(By.ID, "wipe-device"), "the device page")
    find(By.ID, "wipe-device").click()
    _wait(lambda: "requested" in find(By.ID, "wipe-state").text, "the wipe request")
    shot("wipe-requested")
    assert _folder_sync(bob_phone).text("FolderHierarchy:Status") == "140"
    reply = bob_phone.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
        "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML")))))
    assert reply.body.find("Provision:RemoteWipe") is not None
    confirmed = bob_phone.post("Provision", E("Provision:Provision", E("Provision:RemoteWipe",
                                                                       E("Provision:Status", "1"))))
    assert confirmed.text("Provision:Status") == "1"
    d.refresh()
    _wait(lambda: find(By.ID, "wipe-state").text.startswith("done"), "the wipe confirmation")
    shot("wipe-done")

    # the audit log shows all of it
    d.get(cw.url + f"/t/{t}/audit")
    text = find(By.ID, "audit").text
    for action in ("account.create", "account.suspend", "group.member", "folder.share", "device.wipe"):
        assert action in text
    shot("audit-log")
    assert re.search(r"alice@example\.com\s+console\s+127\.0\.0\.1", text)
    refused = [e["message"] for e in d.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not refused, refused  # htmx and the pages run under the strict CSP without violations
