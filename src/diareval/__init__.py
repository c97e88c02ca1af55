"""diareval: measure streaming speaker diarization while the audio arrives.

Data flows one way: ``datasets`` -> ``stream`` (through ``server`` or AssemblyAI) ->
``score`` -> ``report``. ``cli`` is a thin layer over those packages.
"""

__version__ = "0.1.0"
