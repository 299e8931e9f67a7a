"""The notification sounds the UI can pick, synthesised on first use as 16-bit mono WAV.

The reference ships recordings (a cow, a rooster...). Recordings are someone's work, so this package
makes its own: short tones built from sines, glides and envelopes that evoke each name. They are
deterministic (no randomness), computed once per process and kept in memory (a few tens of kilobytes
each), so serving one is a dictionary lookup.
"""

from __future__ import annotations

import io
import math
import struct
import threading
import wave
from collections.abc import Callable, Sequence

RATE = 22050
CONTENT_TYPE = "audio/wav"

#: SoundFile (types.md §2.2) → the file name the reference gives the asset (kept for cache file names).
SOUND_FILES: dict[str, str] = {
    "ABSTRACT_SOUND1": "abstract-sound1.wav",
    "ABSTRACT_SOUND2": "abstract-sound2.wav",
    "ABSTRACT_SOUND3": "abstract-sound3.wav",
    "ABSTRACT_SOUND4": "abstract-sound4.wav",
    "COW_MOOING": "cow-mooing.wav",
    "PHONE_VIBRATION": "phone-vibration.wav",
    "ROOSTER": "rooster.wav",
}

Samples = list[float]


def _envelope(n: int, attack: float, release: float) -> list[float]:
    a = max(1, int(attack * RATE))
    r = max(1, int(release * RATE))
    return [min(1.0, i / a, (n - i) / r) for i in range(n)]


def _tone(freq: Callable[[float], float], seconds: float, harmonics: Sequence[float] = (1.0,)) -> Samples:
    """A tone whose frequency follows ``freq(t)`` (phase accumulated, so glides have no clicks)."""
    n = int(seconds * RATE)
    out: Samples = []
    phase = 0.0
    for i in range(n):
        phase += 2 * math.pi * freq(i / RATE) / RATE
        out.append(sum(w * math.sin(k * phase) for k, w in enumerate(harmonics, start=1)))
    peak = sum(abs(w) for w in harmonics) or 1.0
    return [s / peak for s in out]


def _shape(samples: Samples, attack: float = 0.01, release: float = 0.1) -> Samples:
    return [s * e for s, e in zip(samples, _envelope(len(samples), attack, release), strict=True)]


def _silence(seconds: float) -> Samples:
    return [0.0] * int(seconds * RATE)


def _chime(notes: Sequence[float], step: float, ring: float) -> Samples:
    """Bell-like notes started every ``step`` seconds, each ringing ``ring`` seconds (mixed)."""
    n = int(ring * RATE)
    starts = [int(index * step * RATE) for index in range(len(notes))]
    mix = [0.0] * (starts[-1] + n)
    for start, note in zip(starts, notes, strict=True):
        for i in range(n):
            t = i / RATE
            decay = math.exp(-4.0 * t / ring)
            value = math.sin(2 * math.pi * note * t) + 0.3 * math.sin(2 * math.pi * 2.01 * note * t)
            mix[start + i] += value * decay * min(1.0, i / 80)
    peak = max(abs(s) for s in mix) or 1.0
    return [0.8 * s / peak for s in mix]


def _cow() -> Samples:
    # a low, nasal glide up then down, with a slow vibrato: "mooo"
    def freq(t: float) -> float:
        glide = 120 + 35 * math.sin(math.pi * min(t / 1.2, 1.0))
        return glide + 3 * math.sin(2 * math.pi * 5 * t)

    return _shape(_tone(freq, 1.3, (1.0, 0.7, 0.5, 0.35, 0.2)), attack=0.15, release=0.35)


def _phone() -> Samples:
    # two buzzes of a low tone, amplitude-modulated like a vibrating motor
    def buzz() -> Samples:
        raw = _tone(lambda t: 170.0, 0.4, (1.0, 0.5, 0.25))
        return _shape([s * (0.6 + 0.4 * math.sin(2 * math.pi * 30 * i / RATE)) for i, s in enumerate(raw)])

    return buzz() + _silence(0.15) + buzz()


def _rooster() -> Samples:
    # four syllables, the last one long and falling: "cock-a-doodle-doo"
    def syllable(start: float, end: float, seconds: float) -> Samples:
        return _shape(
            _tone(lambda t: start + (end - start) * t / seconds, seconds, (1.0, 0.6, 0.3)),
            attack=0.02,
            release=0.05,
        )

    return (
        syllable(600, 700, 0.14)
        + _silence(0.04)
        + syllable(700, 760, 0.12)
        + _silence(0.04)
        + syllable(780, 900, 0.2)
        + _silence(0.03)
        + syllable(900, 520, 0.6)
    )


_MAKERS: dict[str, Callable[[], Samples]] = {
    "ABSTRACT_SOUND1": lambda: _chime([659.25, 987.77], 0.12, 0.6),
    "ABSTRACT_SOUND2": lambda: _chime([523.25, 659.25, 783.99], 0.1, 0.5),
    "ABSTRACT_SOUND3": lambda: _chime([880.0, 698.46, 587.33], 0.14, 0.55),
    "ABSTRACT_SOUND4": lambda: _chime([392.0, 587.33, 783.99, 1174.66], 0.08, 0.45),
    "COW_MOOING": _cow,
    "PHONE_VIBRATION": _phone,
    "ROOSTER": _rooster,
}


def _encode(samples: Samples) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        clipped = (max(-1.0, min(1.0, s)) for s in samples)
        out.writeframes(b"".join(struct.pack("<h", int(s * 32000)) for s in clipped))
    return buffer.getvalue()


class SoundLibrary:
    """Every sound of :data:`SOUND_FILES` as WAV bytes, made once and then served from memory."""

    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @staticmethod
    def names() -> list[str]:
        return list(SOUND_FILES)

    def wav(self, name: str) -> bytes | None:
        """The WAV bytes of ``name`` (a SoundFile value), or None when no such sound exists."""
        maker = _MAKERS.get(name)
        if maker is None:
            return None
        with self._lock:
            cached = self._cache.get(name)
            if cached is None:
                cached = self._cache[name] = _encode(maker())
            return cached
