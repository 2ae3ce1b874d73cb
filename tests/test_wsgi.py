"""A chunked request body reaches Django with its length (marketerapi/wsgi.py, issue 12):
before, Django read Content-Length bytes, so a chunked body arrived empty."""

from __future__ import annotations

import io
import json

from marketerapi.wsgi import ChunkedBodies


def _call(environ: dict, limit: int = 100) -> tuple[str, dict, bytes, dict]:
    seen: dict = {}

    def app(env, start_response):
        seen.update(env)
        seen["body"] = env["wsgi.input"].read(int(env.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [])
        return [b"ok"]

    answer: dict = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(ChunkedBodies(app, limit)(environ, start_response))
    return answer["status"], answer["headers"], body, seen


def _environ(body: bytes, **extra) -> dict:
    return {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(body), **extra}


def test_a_chunked_body_from_a_server_that_de_chunks_reaches_the_view_whole():
    status, _, _, seen = _call(
        _environ(b'{"a": 1}', HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input_terminated": True})
    )

    assert status == "200 OK"
    assert seen["body"] == b'{"a": 1}' and seen["CONTENT_LENGTH"] == "8"


def test_a_chunked_body_above_the_limit_is_a_413_problem():
    status, headers, body, seen = _call(
        _environ(b"x" * 101, HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input_terminated": True})
    )

    assert status.startswith("413") and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["code"] == "payload_too_large" and seen == {}


def test_a_chunked_body_a_server_did_not_de_chunk_is_a_411_problem():
    status, _, body, seen = _call(_environ(b"5\r\nhello\r\n0\r\n\r\n", HTTP_TRANSFER_ENCODING="chunked"))

    assert status.startswith("411") and json.loads(body)["code"] == "length_required" and seen == {}


def test_an_ordinary_body_is_left_alone():
    status, _, _, seen = _call(_environ(b"abc", CONTENT_LENGTH="3"))

    assert status == "200 OK" and seen["body"] == b"abc"
