"""The web chat page in a real headless Chromium: ask, see the streamed answer and its citation."""

from __future__ import annotations

import httpx
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait
from serverhelpers import KEY_A


def open_page(browser, url: str, model: str) -> WebDriverWait:
    browser.get(url + "/")
    # The page redraws its thread list and messages as data arrives: an element found a moment
    # ago can be gone, so a wait retries on a stale one instead of failing.
    wait = WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException])
    key = browser.find_element(By.ID, "key")
    key.send_keys(KEY_A)
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 4)
    Select(browser.find_element(By.ID, "model")).select_by_value(model)
    return wait


def click(wait: WebDriverWait, css: str, text: str | None = None) -> None:
    """Click the first element matching ``css`` (and showing ``text``), once the page has it."""

    def clicked(driver) -> bool:
        for element in driver.find_elements(By.CSS_SELECTOR, css):
            if text is None or element.text == text:
                element.click()
                return True
        return False

    wait.until(clicked)


def ask(browser, text: str) -> None:
    box = browser.find_element(By.ID, "question")
    box.send_keys(text)
    browser.find_element(By.ID, "send").click()


def test_ask_and_see_the_answer_with_its_citation(server, browser):
    wait = open_page(browser, server, "handbook")
    ask(browser, "How many days of annual leave do I get?")
    answer = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".answer")))
    assert answer.text == "Annual leave at Acme is 25 days per year [1]."
    cite = answer.find_element(By.CSS_SELECTOR, "sup a.cite")
    assert cite.text == "[1]" and cite.get_attribute("href").endswith("#note-1")
    note = browser.find_element(By.ID, "note-1")
    assert "acme-handbook.md#0" in note.text
    # The conversation shows up in the thread list, and reopens from the server.
    assert wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#threads li.current").text.startswith("web-"))
    browser.find_element(By.ID, "new").click()
    assert browser.find_elements(By.CSS_SELECTOR, ".answer") == []
    click(wait, "#threads li")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".answer"))
    assert "How many days of annual leave" in browser.find_element(By.ID, "log").text


def test_the_answer_streams_in_token_by_token(server, browser):
    wait = open_page(browser, server, "echo")
    # Record every text the preview shows while the answer streams in.
    browser.execute_script(
        "window.seen = []; new MutationObserver((records) => { for (const r of records)"
        " if (r.target.className === 'preview') for (const n of r.addedNodes) window.seen.push(n.textContent); })"
        ".observe(document.getElementById('log'), {childList: true, subtree: true});"
    )
    ask(browser, "stream this to me")
    answer = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".answer")))
    assert answer.text == "turn 1: you said stream this to me"
    seen = browser.execute_script("return window.seen")
    assert seen[0] == "turn " and seen[-1] == "turn 1: you said stream this to me" and len(seen) > 3


def test_tool_steps(server, browser):
    wait = open_page(browser, server, "calc")
    ask(browser, "How many seats are in 17 rows of 23?")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".answer"))
    assert browser.find_element(By.CSS_SELECTOR, ".answer").text == "The result is 391."
    assert 'calculator(expression="17*23") → 391' in browser.find_element(By.CSS_SELECTOR, ".tool").text


def test_approve_from_the_page(server, browser):
    wait = open_page(browser, server, "mailer")
    ask(browser, "mail my boss")
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, ".approval button.approve"))).click()
    answer = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".answer")))
    assert "sent to boss@example.com" in answer.text


def test_a_paused_thread_reopened_shows_its_approval_and_finishes(server, browser):
    # The turn pauses through the API (as if the page had been closed, or the server restarted).
    from serverhelpers import SENT_EMAILS

    SENT_EMAILS.clear()
    headers = {"Authorization": f"Bearer {KEY_A}"}
    paused = httpx.post(
        f"{server}/v1/agents/mailer/turns",
        json={"input": "mail my boss", "thread_id": "web-paused", "stream": False},
        headers=headers,
        timeout=30,
    )
    assert paused.json()["type"] == "paused"
    wait = open_page(browser, server, "mailer")
    click(wait, "#threads li", "web-paused")
    assert wait.until(lambda d: "needs approval" in d.find_element(By.CSS_SELECTOR, ".approval").text)
    assert "send_email" in browser.find_element(By.CSS_SELECTOR, ".approval").text
    click(wait, ".approval button.deny")
    answer = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".answer")))
    assert "declined by the approver" in answer.text and SENT_EMAILS == []
    assert httpx.get(f"{server}/v1/approvals", headers=headers).json()["data"] == []


def test_untrusted_text_is_shown_as_text_never_markup(server, browser):
    wait = open_page(browser, server, "echo")
    attack = "<img src=x onerror=\"document.title='pwned'\"> **bold** `code`"
    ask(browser, attack)
    answer = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".answer")))
    assert answer.find_elements(By.TAG_NAME, "img") == []
    assert "<img src=x" in answer.text and browser.title == "chatloom"
    assert answer.find_element(By.TAG_NAME, "strong").text == "bold"  # markdown still renders
    assert browser.find_element(By.CSS_SELECTOR, ".user").find_elements(By.TAG_NAME, "img") == []


def test_the_page_is_off_without_ui(checkpointer):
    from serverhelpers import config, live_server, scripted_catalog

    from chatloom.server.app import create_app

    with live_server(create_app(scripted_catalog(checkpointer), config())) as url:
        r = httpx.get(url + "/")
    assert r.status_code == 404 and "--ui" in r.json()["error"]["message"]


def test_the_page_asks_for_a_key_then_works(server, browser):
    browser.get(server + "/")
    wait = WebDriverWait(browser, 20)
    hint = wait.until(EC.presence_of_element_located((By.ID, "key-hint")))
    assert "needs an API key" in hint.text and browser.find_elements(By.CSS_SELECTOR, ".error") == []
    key = browser.find_element(By.ID, "key")
    key.send_keys("wrong-key-000000000000000")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".error"))
    key.clear()
    key.send_keys(KEY_A)
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 4)
    assert browser.find_elements(By.ID, "key-hint") == []
