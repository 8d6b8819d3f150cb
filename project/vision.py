"""What a picture costs in prompt tokens. Shared by the dashboard (which counts a
message's pictures when it is saved, to trim the history to the context window) and
the sandbox (which charges them)."""

from __future__ import annotations


def image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """OpenAI's published tile formula for GPT-4o-class models: 85 tokens, plus 170 per
    512 px tile of the picture scaled to fit 2048x2048 and then to 768 px on its short
    side. Some smaller models count pictures by patches instead; for them this is an
    estimate, which is what trimming needs."""
    if detail == "low":
        return 85
    if width <= 0 or height <= 0:
        width = height = 512
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = -(-int(w) // 512) * -(-int(h) // 512)
    return 85 + 170 * tiles
