"""The algo itself: a plain function, called once per run with the payload (parsed JSON)
that arrives on its input; what it returns is sent on its output."""

from __future__ import annotations

from typing import Any

POSITIVE = {"good", "great", "love", "like", "excellent", "happy", "nice"}
NEGATIVE = {"bad", "awful", "hate", "poor", "terrible", "sad", "broken"}


def predict(payload: dict[str, Any]) -> dict[str, Any]:
    """Score `payload["text"]`: positive minus negative words, and a label."""
    text = payload.get("text")
    if not isinstance(text, str):
        raise ValueError('the payload needs "text": a string')
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return {"text": text, "score": score, "label": label}
