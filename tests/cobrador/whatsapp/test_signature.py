"""The X-Twilio-Signature check (`signed_by_twilio`, used by `screen` and
`screen_status`): what twilio's `RequestValidator.validate` accepts, and
nothing else, with one HMAC for a genuine request."""

from __future__ import annotations

import urllib.parse

import pytest
from twilio.request_validator import RequestValidator

from cobrador.whatsapp.channel import parse_form, screen, screen_status, signed_by_twilio
from cobrador.whatsapp.simulator import twilio_fields

TOKEN = "signature-test-token"
URL = "https://bot.example.com/webhooks/whatsapp/webhook"
validator = RequestValidator(TOKEN)


def body_of(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode("utf-8")


def signed(url: str, fields: dict[str, str]) -> tuple[bytes, str]:
    """A body and the signature Twilio would send for it, posted to `url`."""
    return body_of(fields), validator.compute_signature(url, fields)


FIELDS = twilio_fields("+5215512345678", "¡hola! te pago el viernes 💸", [])


def test_a_request_signed_over_the_configured_url_is_twilios() -> None:
    body, signature = signed(URL, FIELDS)
    assert signed_by_twilio(validator, URL, parse_form(body), signature)
    admission = screen(validator, URL, body, signature)
    assert admission.status == 200 and admission.inbound is not None
    assert admission.inbound.body == "¡hola! te pago el viernes 💸"


@pytest.mark.parametrize(
    ("configured", "signed_over"),
    [
        # Twilio has signed over the URL with the scheme's default port spelled out...
        (URL, "https://bot.example.com:443/webhooks/whatsapp/webhook"),
        # ...and over the URL without a port the configured one has.
        ("https://bot.example.com:8443/webhooks/whatsapp/webhook", URL),
    ],
)
def test_the_other_spellings_validate_accepts_are_accepted(configured: str, signed_over: str) -> None:
    body, signature = signed(signed_over, FIELDS)
    assert validator.validate(configured, parse_form(body), signature)  # what the library says
    assert signed_by_twilio(validator, configured, parse_form(body), signature)
    assert screen(validator, configured, body, signature).inbound is not None


def test_tampered_unsigned_and_garbled_signatures_are_refused() -> None:
    body, signature = signed(URL, FIELDS)
    tampered = body_of({**FIELDS, "Body": "no te debo nada"})
    assert not signed_by_twilio(validator, URL, parse_form(tampered), signature)
    assert not signed_by_twilio(validator, URL, parse_form(body), "")
    assert not signed_by_twilio(validator, URL, parse_form(body), signature[:-2] + "AA")
    assert not signed_by_twilio(validator, URL, parse_form(body), "é" * len(signature))  # not ASCII: no error
    assert not signed_by_twilio(RequestValidator("another-token"), URL, parse_form(body), signature)
    # Signed for another path (the status route's signature on the webhook).
    other = validator.compute_signature(URL.replace("/webhook", "/status"), FIELDS)
    assert not signed_by_twilio(validator, URL, parse_form(body), other)
    assert screen(validator, URL, tampered, signature).status == 403
    assert screen_status(validator, URL, tampered, signature) == (403, "invalid signature")


def test_a_blank_field_left_out_of_the_signature_is_refused() -> None:
    fields = {**FIELDS, "ProfileName": ""}
    without_blank = {k: v for k, v in fields.items() if v != ""}
    signature = validator.compute_signature(URL, without_blank)
    assert not signed_by_twilio(validator, URL, parse_form(body_of(fields)), signature)
    assert signed_by_twilio(validator, URL, parse_form(body_of(fields)), validator.compute_signature(URL, fields))


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "https://bot.example.com:443/webhooks/whatsapp/webhook",
        "https://bot.example.com:8443/webhooks/whatsapp/webhook",
        "http://127.0.0.1:5005/webhooks/whatsapp/webhook",
        "http://127.0.0.1/webhooks/whatsapp/webhook?x=1",
    ],
)
def test_it_accepts_exactly_what_validate_accepts_or_a_signature_over_the_very_url(url: str) -> None:
    form = parse_form(body_of(FIELDS))
    spellings = {
        url, URL, url.replace(":443", "").replace(":8443", "").replace(":5005", ""),
        "https://bot.example.com:443/webhooks/whatsapp/webhook", "http://127.0.0.1:80/webhooks/whatsapp/webhook?x=1",
    }  # fmt: skip
    for spelling in spellings:
        signature = validator.compute_signature(spelling, FIELDS)
        expected = validator.validate(url, form, signature) or signature == validator.compute_signature(url, form)
        assert signed_by_twilio(validator, url, form, signature) is expected, spelling


def test_the_form_answers_the_validator_as_a_multidict_does() -> None:
    """The validator reads each field through `getall` (then `getlist`); both
    give every value, blank ones included, so the HMAC covers them all."""
    form = parse_form(b"Body=&Body=hola&To=whatsapp%3A%2B1")
    assert form.getall("Body") == form.getlist("Body") == ["", "hola"]
    assert validator.get_values(form, "Body") == ["", "hola"]


class CountingValidator(RequestValidator):
    """twilio's validator, counting the signatures it computes (one HMAC each)."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.computed = 0

    def compute_signature(self, uri, params):  # noqa: ANN001, ANN201 - the library's signature
        self.computed += 1
        return super().compute_signature(uri, params)


def test_a_genuine_request_costs_one_hmac_and_a_forged_one_all_three() -> None:
    counting = CountingValidator(TOKEN)
    body, signature = signed(URL, FIELDS)
    assert signed_by_twilio(counting, URL, parse_form(body), signature)
    assert counting.computed == 1  # `validate` alone computes two
    counting.computed = 0
    assert not signed_by_twilio(counting, URL, parse_form(body_of({**FIELDS, "Body": "otro"})), signature)
    assert counting.computed == 3  # the configured URL's, then validate's two
