"""Rasa's HTTP API is on (the console reads trackers through it) and answers
only requests that carry a JWT signed with the configured secret."""

from __future__ import annotations

import jwt
import requests

from tests.e2e.conftest import LOCAL_TOKEN

SECRET = f"devstack-{LOCAL_TOKEN}"  # what cobrador.devstack gives Rasa


def token(secret: str, role: str = "admin") -> str:
    return jwt.encode({"user": {"username": "console", "role": role}}, secret, algorithm="HS256")


def test_the_http_api_refuses_requests_without_a_valid_jwt(stack) -> None:
    url = f"{stack.rasa_url}/conversations/+525550000110/tracker"
    assert requests.get(url, timeout=10).status_code == 401
    forged = {"Authorization": f"Bearer {token('not-the-secret')}"}
    assert requests.get(url, headers=forged, timeout=10).status_code == 401
    assert requests.get(f"{stack.rasa_url}/status", timeout=10).status_code == 401
    assert requests.post(f"{stack.rasa_url}/model/parse", json={"text": "hola"}, timeout=10).status_code == 401


def test_the_http_api_answers_with_a_jwt(stack) -> None:
    headers = {"Authorization": f"Bearer {token(SECRET)}"}
    answer = requests.get(f"{stack.rasa_url}/conversations/+525550000110/tracker", headers=headers, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["sender_id"] == "+525550000110"
