"""Algos used by the example pipelines (python runtime: `hello_algos:NAME`)."""


def upper(payload):
    return {"text": str(payload["text"]).upper()}


def word_count(payload):
    return {"words": len(str(payload["text"]).split())}


def route_by_length(payload):
    """Conditional routing: only one of the two outputs appears."""
    text = str(payload["text"])
    return {"short": {"text": text}} if len(text) < 20 else {"long": {"text": text}}


def shout(payload):
    """Keep every field, upper-case the text."""
    return {**payload, "text": str(payload["text"]).upper()}
