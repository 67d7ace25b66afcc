"""The local WhatsApp simulator in headless Chromium (Debian's, driven by
Playwright): pick a demo debtor, chat, see the bot's replies and their
delivery state. Messages go out as signed Twilio webhooks to the real
endpoint."""

from __future__ import annotations


def test_a_person_chats_with_the_bot_in_the_simulator(stack, browser) -> None:
    page = browser.new_page()
    page.goto(f"{stack.rasa_url}/webhooks/whatsapp/simulator")
    page.select_option("#debtor", "+17135550191")  # Patricia Nguyen, English
    page.fill("#text", "hi")
    page.click("#send")
    bot = page.locator(".msg.out").first
    bot.wait_for(timeout=20000)
    assert (
        bot.locator("div")
        .first.inner_text()
        .startswith("Hi! This is the virtual assistant of Cobrador Recovery Services")
    )
    page.wait_for_selector('.msg.out[data-status="delivered"]', timeout=5000)
    assert page.locator(".msg.in").first.inner_text().startswith("hi")
    page.close()


def test_debtor_text_is_shown_as_text_never_as_html(stack, browser) -> None:
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{stack.rasa_url}/webhooks/whatsapp/simulator")
    page.select_option("#debtor", "+16175550133")  # Emily Carter
    payload = '<img src=x onerror="alert(1)"><b>bold</b>'
    page.fill("#text", payload)
    page.click("#send")
    page.locator(".msg.out").first.wait_for(timeout=20000)
    assert page.locator(".msg.in div").first.inner_text() == payload
    assert page.locator(".msg img").count() == 0 and dialogs == []
    page.close()
