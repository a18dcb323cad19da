"""Wake-word detection with microWakeWord models (``pymicro-wakeword``).

The package ships its models (``okay_nabu``, ``alexa``, ``hey_jarvis``, ``hey_mycroft``)
and TensorFlow Lite, so nothing is downloaded at run time. It is imported only here,
only when a wake word is used; without it, a clear :class:`ConfigError` says how to
install it.

Sensitivity (``wake_word.sensitivity``, 0..1) maps onto the model's probability cutoff:
0.5 keeps the model's own (0.85 for ``okay_nabu``), 1 lowers it linearly to 0.5, 0 raises
it linearly to 0.99.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_device.errors import ConfigError
from hello_device.settings import WakeWordSettings
from hello_device.settings.schema import BUILTIN_WAKE_MODELS as BUILTIN_MODELS

__all__ = ["BUILTIN_MODELS", "Detection", "WakeWordDetector", "cutoff_for"]

STEP_S = 0.010
"""Audio per feature step (microWakeWord's feature_step_size, 10 ms)."""
MOST_EAGER_CUTOFF = 0.5
MOST_STRICT_CUTOFF = 0.99


@dataclass(frozen=True)
class Detection:
    """The word was heard: when (seconds of audio fed so far) and how surely."""

    at_s: float
    probability: float


def cutoff_for(sensitivity: float, model_cutoff: float) -> float:
    """The probability a detection needs at this sensitivity (see the module docstring)."""
    if sensitivity >= 0.5:
        return model_cutoff + (MOST_EAGER_CUTOFF - model_cutoff) * (sensitivity - 0.5) / 0.5
    return model_cutoff + (MOST_STRICT_CUTOFF - model_cutoff) * (0.5 - sensitivity) / 0.5


def _load(model: str) -> tuple[Any, Any]:
    """(the model, its feature extractor), or a ConfigError naming ``wake_word.model``."""
    try:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
    except ImportError:
        raise ConfigError(
            "wake_word: the wake word needs the pymicro-wakeword package: "
            "pip install 'hello-device[wake]' (64-bit x86 or ARM, or 32-bit ARM)"
        ) from None
    if model in BUILTIN_MODELS:
        return MicroWakeWord.from_builtin(Model(model)), MicroWakeWordFeatures()
    path = Path(model)
    if path.suffix != ".json" or not path.is_file():
        raise ConfigError(
            f"wake_word.model: {model!r} is neither a built-in model "
            f"({', '.join(BUILTIN_MODELS)}) nor an existing microWakeWord JSON manifest"
        )
    try:
        return MicroWakeWord.from_config(path), MicroWakeWordFeatures()
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"wake_word.model: cannot load {path}: {exc}") from None


class WakeWordDetector:
    """Feed 16 kHz mono int16 audio in chunks of any size; get :class:`Detection` s."""

    def __init__(self, settings: WakeWordSettings) -> None:
        self.settings = settings
        self._model, self._features = _load(settings.model)
        self.model_cutoff = float(self._model.probability_cutoff)
        self.cutoff = cutoff_for(settings.sensitivity, self.model_cutoff)
        self.wake_word = str(self._model.wake_word)
        """The phrase, as the model names it (``Okay Nabu``)."""
        model = settings.model
        self.model_id = model if model in BUILTIN_MODELS else Path(model).stem
        """The model, as the configuration names it (``okay_nabu``; a custom model's
        manifest name): the ``wake_word`` field of logs and status."""
        self._steps = 0  # feature steps (10 ms each) seen so far
        self._stride = max(1, int(self._model.stride))
        self._pending = 0  # feature steps since the model last ran
        self._above = False  # the last probability was over the cutoff
        self._last: float | None = None
        self.highest = (0.0, 0.0)
        """The highest probability so far and when (seconds), for tuning."""
        self.latest = 0.0
        """The model's most recent probability."""

    def feed(self, pcm: bytes) -> list[Detection]:
        """The detections in this chunk: each time the probability rises over the
        cutoff, at most once per refractory period."""
        found: list[Detection] = []
        for features in self._features.process_streaming(pcm):
            self._steps += 1
            now = self._steps * STEP_S
            probability = self._model.process_streaming_prob(features)
            # The model runs once per `stride` feature steps and answers 0.0 in between.
            self._pending += 1
            if probability is None or self._pending < self._stride:
                continue
            self._pending = 0
            p = self.latest = float(probability)
            if p > self.highest[0]:
                self.highest = (p, now)
            rising = p > self.cutoff and not self._above
            self._above = p > self.cutoff
            refractory = self._last is not None and now - self._last < self.settings.refractory_s
            if rising and not refractory:
                self._last = now
                found.append(Detection(now, p))
        return found

    def reset(self) -> None:
        """Forget the audio heard so far (a new stream)."""
        self._model.reset()
        self._features.reset()
        self._steps = 0
        self._pending = 0
        self._above = False
        self._last = None
        self.highest = (0.0, 0.0)
