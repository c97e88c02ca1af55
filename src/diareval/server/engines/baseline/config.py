"""The baseline's options (:class:`BaselineConfig`) and the limits every block shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from diareval.errors import ConfigError

MAX_GLOBAL = 10  # global speakers at most: the service's max_speakers range is 1..10
VAD_FRAME = 512  # samples per silero-vad frame (32 ms)
MAX_OFFLINE_POINTS = 2000  # the offline tree is built on at most this many embeddings
MAX_LIVE_POINTS = 1000  # ... and the one re-built at every final turn (live_recluster)


@dataclass
class BaselineConfig:
    """Every tunable of the baseline (``python -m diareval tune`` searches these)."""

    # turns
    vad_threshold: float = 0.5
    turn_pad: float = 0.2  # s of audio kept before the first / after the last speech frame
    partial_interval: float = 1.0  # s of new audio between partial decodes (at least)
    partial_growth: float = 0.5  # ... and at least this share of the turn's length so far
    partials: bool = True
    max_turn_seconds: float = 25.0
    # A pause of min_turn_silence ends a turn early when the transcript ends a sentence
    # ("confident" end of turn), but only a turn with this much speech (s): a lone
    # "Right." waits for max_turn_silence, so it can join what its speaker says next.
    min_confident_turn: float = 1.0
    # diarization
    window: float = 5.0
    step: float = 0.5
    fresh_margin: float = 1.5  # s before the newest step that must hold speech for a window to run
    tau_active: float = 0.5
    rho_update: float = 0.3
    delta_new: float = 0.55
    embedding_seconds: float = 2.0
    min_embedding_seconds: float = 0.3
    speaker_threshold: float = 0.5  # local activity above this counts as speaking
    min_word_run: float = 0.5  # s; shorter same-speaker word runs inside another speaker's become theirs
    continuity: float = 0.6  # activity overlap (IoU) linking a local speaker to the previous window's
    refresh_steps: int = 0  # a linked local speaker is re-embedded after this many windows
    recent_seconds: float = 0.0  # a linked local speaker silent this long in the window is not re-embedded (0: off)
    # A local speaker whose embedding frames are nearly those an embedding of the previous
    # window was computed from (Jaccard overlap of the absolute fbank frames at least this)
    # takes that embedding instead of a new one: a speaker who stopped talking keeps the
    # same last 2 s window after window (0: off; CAM++ is the engine's main cost). 0.75:
    # CPU -10 to -18% on calls and mixtures, DER unchanged within 0.003 revised (issue 16,
    # benchmarks/engine.py); 0.6 also skips a talking speaker's every other window: DER
    # on the excerpts 0.2945 -> 0.3134.
    reuse_embeddings: float = 0.75
    # A word's speaker at the end-of-stream revision: among the speakers whose mean
    # activity over the word is at least this share of the top one's, the one with most
    # activity where the windows' embeddings came from (grid.SpeakerGrid); negative:
    # the most active one only (as live words always are, unless evidence_online).
    evidence_floor: float = 0.25
    evidence_online: bool = False  # live words too (measured worse: DER without revision 0.352 -> 0.364)
    # labels
    snap_words: bool = True  # stretch word extents over the VAD speech around them
    max_snap: float = 0.6  # s, at most, per word side
    unknown_below: float = 1.0  # s of speech; shorter turns are "UNKNOWN" (0 disables)
    revise: bool = True  # SpeakerRevision at the end of the stream
    revise_offline: bool = True  # ... from re-clustering the whole session (else: final centroids)
    offline_threshold: float = 0.5  # cosine distance cutting the offline average-linkage tree
    # Final Turns take their speakers from the session so far re-clustered as the revision
    # does (at most MAX_LIVE_POINTS embeddings); off: from the online clustering's mapping.
    live_recluster: bool = True
    # Word extents stretch over speech: VAD, or the segmentation's speech from windows of
    # speech_window s run every speech_step s (segmentation-3.0 was trained on 10 s windows
    # and finds speech better with them than with the diarization windows; 0: those).
    # speech_step 4 (was 2; each cell still under two or three such windows): CPU -4 to
    # -14%, DER within 0.003 on the excerpts and calls seeds 3, 5 (benchmarks/engine.py,
    # session 7).
    speech_window: float = 10.0
    speech_step: float = 4.0
    # Overlapping speech: the first and last word of each run of one speaker's words
    # stretch, past the words of other speakers, over the cells where the grid says that
    # speaker is active, at most this many s per side (0: off). Words of two speakers then
    # overlap in time where their speech does; Whisper gives one word stream, so without
    # this a hypothesis never holds two speakers at once.
    overlap_grow: float = 2.0
    grow_overlap_only: bool = True  # ... only where another speaker is active too
    grow_threshold: float = 0.5  # mean activity (of both) that counts as speaking there
    refine_changes: float = 0.3  # s around a change of speaker where the grid places it
    # A turn in progress ends where the speaker changes without a pause (labelling.
    # speaker_change on the online grid): each side needs this much speech (s; 0: off).
    change_min_run: float = 0.6
    # Narrow-band audio (bandwidth.BandwidthMeter: nothing above 4 kHz, as on a phone line)
    # shrinks CAM++ distances between speakers; there, and wherever max_speakers is given,
    # a merge of the re-clustering tree down to split_floor is undone too when both sides
    # hold split_min_points embeddings (a smaller side joins the closest cluster).
    narrow_db: float = -45.0  # energy above 4 kHz under this (dB of 300-3400 Hz): narrow-band
    narrow_delta_new: float = 0.46  # delta_new there (0.55 mapped by the distances' shift; 0: unchanged)
    split_floor: float = 0.38  # cosine distance (0: no such splits)
    split_min_points: int = 10
    # ... on narrow-band audio, until spectral_min_points embeddings (the first 10-20 s):
    # two voices on a phone line stayed one cluster, all "A", for the first 15 s (calls
    # seed 5 recording 01; as sent 0.318 -> 0.278 on the set; benchmarks/engine.py,
    # session 14). 0: split_floor and split_min_points there too.
    narrow_split_floor: float = 0.34
    narrow_split_min_points: int = 8
    # On narrow-band audio the re-clustering (live and revised) is spectral clustering
    # with the number of speakers from the eigengap (recluster.spectral_labels, NME-SC),
    # once the session has spectral_min_points embeddings; "tree": the cut above there too.
    narrow_clusterer: str = "spectral"
    spectral_min_points: int = 40  # fewer: the tree cut (each graph row keeps 20 neighbours)
    spectral_max_points: int = 300  # the graph is built on at most this many (evenly spaced)
    # Where the diarization windows' 2 s embeddings give one speaker, the spectral
    # clustering also runs on the final turns' 1 s sliding windows (relabel_window), once
    # there are spectral_min_points of them, and takes their clusters if it finds more:
    # at the revisions ("revision"), live too ("sliding"), or never ("windows"). In quick
    # turn-taking a 2 s embedding often holds both voices, a 1 s window mostly one (calls
    # seed 67 recording 02: k 1 on the 2 s points, k 3 with 0.99 purity on the windows).
    # Where the points found two, the windows' third speaker was spurious (calls 89
    # recording 02: revised 0.222 -> 0.392), hence one speaker only (benchmarks/engine.py,
    # session 12). Where the voice is one, the windows can split it too (one-speaker calls
    # seed 97 recording 01: revised 0.179 with "windows", 0.271 with "revision"; session 13).
    narrow_points: str = "revision"
    # Each final turn is also embedded in relabel_window s windows every relabel_hop s, and a
    # word whose windows are closer to another re-clustering cluster than to its grid
    # speaker's by relabel_margin takes that cluster's speaker (sliding.relabel; live and at
    # the revisions), on all audio (relabel_band "all") or narrow-band audio only ("narrow").
    # relabel_window 0: off.
    relabel_window: float = 1.0
    relabel_hop: float = 0.5
    relabel_margin: float = 0.0
    relabel_band: str = "all"

    @classmethod
    def from_options(cls, options: dict) -> "BaselineConfig":
        """Options by name (values may be strings, as from the command line), checked: an
        unknown name or a bad value is a ConfigError naming it."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"unknown baseline option(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(known))}")
        values = {}
        for name, value in options.items():
            default = getattr(cls, name)
            try:
                if isinstance(default, bool):
                    values[name] = value if isinstance(value, bool) else \
                        str(value).lower() in ("1", "true", "yes", "on")
                else:
                    values[name] = type(default)(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"baseline option {name}={value!r}: {exc}") from exc
        config = cls(**values)
        if config.window < 1.0 or config.step <= 0 or config.step > config.window:
            raise ConfigError("baseline options: need window >= 1 s and 0 < step <= window")
        if config.relabel_band not in ("narrow", "all"):
            raise ConfigError("baseline option relabel_band: 'narrow' or 'all', got "
                              f"{config.relabel_band!r}")
        if config.narrow_points not in ("windows", "sliding", "revision"):
            raise ConfigError("baseline option narrow_points: 'windows', 'sliding' or 'revision', got "
                              f"{config.narrow_points!r}")
        if config.narrow_clusterer not in ("spectral", "tree"):
            raise ConfigError("baseline option narrow_clusterer: 'spectral' or 'tree', got "
                              f"{config.narrow_clusterer!r}")
        if config.relabel_window and (config.relabel_window < 0.5 or config.relabel_hop <= 0):
            raise ConfigError("baseline options: need relabel_window 0 or >= 0.5 s, and relabel_hop > 0")
        if config.speech_window and (config.speech_window < 1.0 or config.speech_step <= 0):
            raise ConfigError("baseline options: need speech_window 0 or >= 1 s, and speech_step > 0")
        return config

    def as_dict(self) -> dict:
        """Every option by name."""
        return asdict(self)
