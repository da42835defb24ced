"""The codec: media types, values and headers, and the call sites that now share it."""

from __future__ import annotations

import base64
import datetime
import decimal
import enum
import json
import uuid

import pytest

from algorail.runtime import codec

MEDIA = [
    # content type, media type, JSON, text
    ("application/json", "application/json", True, False),
    ("Application/JSON; charset=utf-8", "application/json", True, False),
    ("application/cloudevents+json", "application/cloudevents+json", True, False),
    (codec.FILE_REFERENCE, codec.FILE_REFERENCE, True, False),
    ("text/plain", "text/plain", False, True),
    ("TEXT/CSV ; header=present", "text/csv", False, True),
    ("application/octet-stream", "application/octet-stream", False, False),
    ("image/png", "image/png", False, False),
    ("application/jsonl", "application/jsonl", False, False),
    ("text/json", "text/json", False, True),
    ("", "", False, False),
]


@pytest.mark.parametrize(("content_type", "media", "json_", "text"), MEDIA)
def test_media_types(content_type, media, json_, text):
    assert codec.media_type(content_type) == media
    assert codec.is_json(content_type) is json_
    assert codec.is_text(content_type) is text


@pytest.mark.parametrize(("produced", "accepted", "ok"), [
    ("application/json", "application/json; charset=utf-8", True),
    ("image/png", "image/*", True),
    ("text/plain", "*/*", True),
    ("text/plain", "application/json", False),
    ("image/png", "text/*", False),
])
def test_compatible(produced, accepted, ok):
    assert codec.compatible(produced, accepted) is ok


VALUES = [
    # content type, payload, message value
    ("application/json", {"a": [1, 2.5, None, True]}, b'{"a":[1,2.5,null,true]}'),
    ("application/json", "text", b'"text"'),
    ("application/json", 0, b"0"),
    ("application/json", None, b"null"),
    ("application/json", {"\u00e9": "\u2603"}, b'{"\\u00e9":"\\u2603"}'),
    ("application/x+json", [], b"[]"),
    ("text/plain", b"hello", b"hello"),
    ("application/octet-stream", b"\x00\xff", b"\x00\xff"),
]


@pytest.mark.parametrize(("content_type", "payload", "value"), VALUES)
def test_encode_and_decode_round_trip(content_type, payload, value):
    assert codec.encode(payload, content_type) == value
    assert codec.decode(value, content_type) == payload


def test_str_under_a_non_json_type_is_utf8_and_decodes_to_bytes():
    assert codec.encode("h\u00e9", "text/plain") == "h\u00e9".encode()
    assert codec.decode("h\u00e9".encode(), "text/plain") == "h\u00e9".encode()


def test_bytes_pass_through_under_any_type():
    for content_type in ("application/json", "text/plain", "image/png"):
        assert codec.encode(b"{raw", content_type) == b"{raw"
        assert codec.encode(bytearray(b"ab"), content_type) == b"ab"


def test_none_value_decodes_to_none():
    assert codec.decode(None, "application/json") is None
    assert codec.decode(None, "image/png") is None


def test_sql_row_types_are_written_as_their_str():
    when = datetime.datetime(2024, 5, 1, 10, 30)
    ident = uuid.UUID(int=1)
    row = {"at": when, "day": when.date(), "price": decimal.Decimal("1.10"), "id": ident}
    assert codec.decode(codec.encode(row, "application/json"), "application/json") == {
        "at": str(when), "day": "2024-05-01", "price": "1.10", "id": str(ident)}


@pytest.mark.parametrize("payload", [object(), {1, 2}, {(1, 2): "tuple key"}])
def test_a_payload_json_cannot_hold_is_a_codec_error(payload):
    with pytest.raises(codec.CodecError, match="JSON"):
        codec.encode(payload, "application/json")


def test_a_circular_payload_is_a_codec_error():
    loop: list = []
    loop.append(loop)
    with pytest.raises(codec.CodecError, match="cannot be JSON"):
        codec.encode(loop, "application/json")


@pytest.mark.parametrize("value", [b"{not json", b"", b"\xff\xfe", b"[1,", b"'single'"])
def test_a_value_that_is_not_json_under_a_json_type_is_reported(value):
    with pytest.raises(codec.CodecError) as info:
        codec.decode(value, "application/cloudevents+json; charset=utf-8")
    assert isinstance(info.value, ValueError)  # call sites catching ValueError still do
    assert "application/cloudevents+json; charset=utf-8" in str(info.value)


PORTABLE = [
    ("application/json", b'{"a":1}', {"a": 1}),
    ("application/json", b"", None),
    ("application/json", None, None),
    (codec.FILE_REFERENCE, b'{"key":"k"}', {"key": "k"}),
    ("text/plain; charset=utf-8", "caf\u00e9".encode(), "caf\u00e9"),
    ("text/plain", b"\xff", "\ufffd"),
    ("text/plain", None, ""),
    ("image/png", b"\x89PNG", {"contentType": "image/png",
                               "base64": base64.b64encode(b"\x89PNG").decode()}),
]


@pytest.mark.parametrize(("content_type", "value", "expected"), PORTABLE)
def test_portable(content_type, value, expected):
    assert codec.portable(value, content_type) == expected


def test_portable_reports_a_broken_json_value():
    with pytest.raises(codec.CodecError):
        codec.portable(b"{oops", "application/json")


@pytest.mark.parametrize(("content_type", "value", "expected"), [
    ("application/json", b'{"a":1}', {"a": 1}),
    ("application/json", b"{oops", "{oops"),
    ("application/json", b"", None),
    ("text/plain", b"42", "42"),
    ("image/png", b"abc", "abc"),
    ("image/png", b"\xff\x00\x01", "<3 bytes>"),
])
def test_readable(content_type, value, expected):
    assert codec.readable(value, content_type) == expected


def test_envelope_round_trip():
    envelope = codec.Envelope("run-1", "dep", "upper.out", "text/plain", "00-t-s-01",
                              skip=True, extra={"x-custom": "v"})
    headers = envelope.to_headers()
    assert all(isinstance(v, bytes) for _, v in headers)
    assert codec.Envelope.from_headers(headers) == envelope


def test_envelope_defaults_and_bad_headers():
    empty = codec.Envelope.from_headers(None)
    assert len(empty.run_id) == 32 and empty.content_type == codec.JSON and not empty.skip
    odd = codec.Envelope.from_headers([(codec.RUN_ID, b"r\xff"), (codec.SKIP, None),
                                       ("x", b"1"), ("x", b"2")])
    assert odd.run_id == "r\ufffd" and not odd.skip and odd.extra == {"x": "2"}
    assert codec.header_dict(odd.to_headers())[codec.RUN_ID] == "r\ufffd"


def test_a_new_traceparent_keeps_the_trace():
    parent = codec.new_traceparent("ab" * 16)
    version, trace, span, flags = parent.split("-")
    assert (version, trace, flags) == ("00", "ab" * 16, "01") and len(span) == 16
    assert codec.new_traceparent("ab" * 16) != parent
    spans = [codec.new_span_id() for _ in range(2000)]  # several batches of the pool
    assert len(set(spans)) == len(spans) and all(len(s) == 16 for s in spans)
    assert set("".join(spans)) == set("0123456789abcdef")


# -- the call sites, as before where the old rules agreed ------------------------------------

def test_runner_sink_and_hook_agree_on_json():
    """The runner and the sinks decode with `decode`, the hooks with `portable`: on JSON
    they give the same value, as the runner's, the hooks' and the sinks' decoders did."""
    for value in (b'{"a":[1,2]}', b'"s"', b"3.5", b"null"):
        assert codec.decode(value, "application/json") == codec.portable(
            value, "application/json")


def test_a_sink_forwards_a_json_string_as_json():
    """A decoded JSON string re-encoded for a sink stays JSON (it used to lose its quotes)."""
    value = codec.decode(b'"hi"', "application/json")
    assert codec.encode(value, "application/json") == b'"hi"'


def test_run_ids_are_random_uuids_never_repeated_nor_shared_with_a_forked_child():
    import os

    ids = [codec.new_run_id() for _ in range(2000)]  # several batches of the pool
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).hex == i for i in ids)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child's next ids must not be the parent's
        os.write(write, "".join(codec.new_run_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 200).decode()
    os.close(read)
    ours = "".join(codec.new_run_id() for _ in range(3))
    assert len(theirs) == 96 and theirs != ours


SAME_AS_THE_JSON_MODULE = [
    {"i": 1, "pad": "x" * 1000}, [1.5, -0.0, 1e16, 1e15, 0.0001, 2.5e300, 1e-300],
    {"a": None}, float("nan"), [float("inf"), -float("inf")], "caf\u00e9", "a\x00\x1f\x7f\n",
    2**64, {"k": (1, 2)}, True, 123456789012345678.0, "one-two e-mail", "null",
]


@pytest.mark.parametrize("payload", SAME_AS_THE_JSON_MODULE)
def test_json_text_is_the_json_modules(payload):
    """orjson writes what it writes the same way; the rest goes through the json module."""
    expected = json.dumps(payload, separators=(",", ":")).encode()
    assert codec.encode(payload, "application/json") == expected


def test_a_tiny_float_is_the_same_number():
    for number in (1e-5, 7.2e-05, 1e-7, -3.5e-9):
        assert codec.decode(codec.encode([number], "application/json"),
                            "application/json") == [number]


def test_an_enum_member_is_written_as_its_value():
    class Colour(enum.Enum):
        RED = "red"

    assert codec.encode({"c": Colour.RED}, "application/json") == b'{"c":"red"}'
    assert codec.encode({"c": Colour.RED, "n": None}, "application/json") == (
        b'{"c":"red","n":null}')
