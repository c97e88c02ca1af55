"""diareval: measure streaming speaker diarization while the audio arrives.

Data flows one way: ``datasets`` -> ``stream`` (through ``server`` or AssemblyAI) ->
``score`` -> ``report``; ``server`` never imports ``score``. ``tune`` (the baseline's
threshold search) streams in this process (``stream.offline``) and scores, downstream of
both. ``cli`` is a thin layer over those packages.
"""

__version__ = "0.1.0"
