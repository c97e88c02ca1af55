"""``python -m diareval datasets``: list datasets (and what is downloaded), download AMI,
generate conversations, add noise. Each action is one call into :mod:`diareval.datasets`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diareval.errors import DatasetError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The ``datasets`` command and its sub-commands (``list`` is the default)."""
    parser = subparsers.add_parser(
        "datasets", help="list datasets and what is downloaded; download AMI; generate",
        description="Without a sub-command: list the registered datasets and what is "
                    "downloaded or cached under the data root ($DIAREVAL_DATA or "
                    "~/.cache/diareval).")
    parser.add_argument("--root", default=None, help="data root (default $DIAREVAL_DATA "
                        "or ~/.cache/diareval)")
    sub = parser.add_subparsers(dest="datasets_command", metavar="ACTION")
    listing = sub.add_parser("list", help="list datasets (the default)")

    download = sub.add_parser("download", help="download a corpus (AMI)",
                              description="Download an AMI subset: setup files (lists, "
                              "only_words RTTMs, UEMs), audio and optionally the manual "
                              "annotations' words. Idempotent and resumable.")
    download.add_argument("name", choices=["ami"], help="corpus to download")
    download.add_argument("--subset", default="test", choices=["train", "dev", "test"])
    download.add_argument("--mic", default="ihm", choices=["ihm", "sdm"],
                          help="ihm = Mix-Headset (default), sdm = Array1-01")
    download.add_argument("--words", action="store_true",
                          help="also the reference words (AMI manual annotations 1.6.2 zip)")
    download.add_argument("--no-audio", action="store_true",
                          help="only the setup files (references and UEMs)")
    download.add_argument("--yes", "-y", action="store_true",
                          help="do not ask before a multi-GB download")
    download.add_argument("--mirror", default=None, help="AMI corpus base URL "
                          "(default $DIAREVAL_AMI_MIRROR or https://groups.inf.ed.ac.uk/ami)")
    download.add_argument("--setup-url", default=None, help="base URL of the setup files "
                          "(default $DIAREVAL_AMI_SETUP_URL or the pinned GitHub commit)")

    generate = sub.add_parser("generate", help="generate (and cache) synthetic conversations",
                              description="Generate conversations with espeak-ng voices "
                              "(the optional synth extra, GPL-3.0). Same options, same bytes.")
    generate.add_argument("--conversations", type=int, default=3)
    generate.add_argument("--profile", default=None, choices=["default", "call"],
                          help="turn-taking profile (call: 2 speakers, gaps 0-0.3 s, 15%% "
                          "back-channels, 20%% overlapping changes); options given win")
    generate.add_argument("--speakers", type=int, nargs="+", default=None,
                          help="speakers per conversation (cycled; default 2 3 4)")
    generate.add_argument("--minutes", type=float, default=1.0)
    generate.add_argument("--seed", type=int, default=0)
    # None: the profile's value (default profile: 0.3, 10, 0.15, 0.6, 0.5)
    generate.add_argument("--backchannel-rate", type=float, default=None)
    generate.add_argument("--mean-words", type=float, default=None)
    generate.add_argument("--overlap-rate", type=float, default=None)
    generate.add_argument("--overlap-mean", type=float, default=None)
    generate.add_argument("--pause-mean", type=float, default=None)
    generate.add_argument("--noise", default=None, help="white, pink or a folder of noise files")
    generate.add_argument("--snr", type=float, default=None)

    noisy = sub.add_parser("noise", help="noisy copies of a dataset at one or more SNRs",
                           description="Derived, cached copies mixed with noise; SNR over "
                           "the reference speech.")
    noisy.add_argument("dataset", help="dataset name or folder")
    noisy.add_argument("--noise", default="pink", help="white, pink, babble or a folder")
    noisy.add_argument("--snr", type=float, nargs="+", required=True)
    noisy.add_argument("--seed", type=int, default=0)

    phone = sub.add_parser("telephone", help="copies of a dataset through a telephone channel",
                           description="Derived, cached copies: band-pass 300-3400 Hz, 8 kHz, "
                           "G.711 mu-law, optional packet loss; back to 16 kHz.")
    phone.add_argument("dataset", help="dataset name or folder")
    phone.add_argument("--loss", type=float, default=0.0,
                       help="probability that a 20 ms packet is lost (default 0)")
    phone.add_argument("--concealment", default="zeros", choices=["zeros", "repeat"],
                       help="a lost packet is silence (zeros) or the last one again (repeat)")
    phone.add_argument("--loss-seed", type=int, default=0)
    for child in (listing, download, generate, noisy, phone):  # --root after the action works too
        child.add_argument("--root", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the chosen action; print what was done."""
    action = args.datasets_command or "list"
    if action == "list":
        print(format_listing(list_datasets(args.root)))
        return 0
    if action == "download":
        from diareval.datasets.ami import download_ami, ensure_ami

        urls = {"base_url": args.mirror, "setup_base_url": args.setup_url}
        if args.no_audio:
            folder = download_ami(args.root, args.subset, args.mic, words=args.words,
                                  audio=False, **urls)
        else:
            folder = ensure_ami(args.root, args.subset, args.mic, words=args.words,
                                yes=args.yes, **urls)
        print(f"AMI {args.subset} ({args.mic}) ready in {folder}")
        return 0
    if action == "generate":
        from diareval.datasets.synthetic import load_synthetic

        given = {"profile": args.profile, "backchannel_rate": args.backchannel_rate,
                 "mean_words": args.mean_words, "overlap_rate": args.overlap_rate,
                 "overlap_mean": args.overlap_mean, "pause_mean": args.pause_mean,
                 "n_speakers": tuple(args.speakers) if args.speakers else None}
        recordings = load_synthetic(
            args.root, progress=True, n_conversations=args.conversations,
            minutes=args.minutes, seed=args.seed, noise=args.noise, snr=args.snr,
            **{k: v for k, v in given.items() if v is not None})
        folder = recordings[0].audio_path.parent if recordings else None
        print(f"{len(recordings)} conversation(s) in {folder}")
        return 0
    if action == "noise":
        from diareval.datasets import load
        from diareval.datasets.noise import noise_sweep

        sweep = noise_sweep(load(args.dataset), args.snr, noise=args.noise, seed=args.seed,
                            root=args.root)
        for snr, recordings in sweep.items():
            print(f"{args.noise} @ {snr:g} dB: {len(recordings)} recording(s) in "
                  f"{recordings[0].audio_path.parent if recordings else '-'}")
        return 0
    if action == "telephone":
        from diareval.datasets import load
        from diareval.datasets.telephone import TelephoneChannel, add_telephone

        channel = TelephoneChannel(loss=args.loss, concealment=args.concealment,
                                   loss_seed=args.loss_seed)
        recordings = add_telephone(load(args.dataset), channel, root=args.root)
        lost = [r.meta["lost_packets"] for r in recordings]
        print(f"telephone: {len(recordings)} recording(s) in "
              f"{recordings[0].audio_path.parent if recordings else '-'}"
              + (f" ({100 * sum(lost) / len(lost):.1f}% of packets lost)" if lost else ""))
        return 0
    raise DatasetError(f"unknown datasets action {action!r}")


def list_datasets(root: str | Path | None = None) -> list[dict]:
    """What exists (registered names) and what is downloaded or cached under ``root``."""
    from diareval.datasets import REGISTRY
    from diareval.datasets.ami import MICS, SUBSETS, ami_dir, meetings, missing_audio
    from diareval.datasets.download import cache_root
    from diareval.datasets.espeak import available

    base = cache_root(root)
    rows: list[dict] = []
    folder = ami_dir(root)
    for subset in SUBSETS:
        try:
            uris = meetings(root, subset)
        except DatasetError:
            rows.append({"name": "ami", "variant": subset, "status": "not downloaded",
                         "where": str(folder)})
            continue
        parts = []
        for mic, label in MICS.items():
            have = len(uris) - len(missing_audio(root, subset, mic))
            parts.append(f"{mic} audio {have}/{len(uris)}")
        words = (folder / "annotations" / "corpusResources" / "meetings.xml").exists()
        parts.append("words" if words else "no words")
        rows.append({"name": "ami", "variant": subset, "status": ", ".join(parts),
                     "where": str(folder)})
    synthetic = sorted((base / "synthetic").glob("*/dataset.json"))
    if not synthetic:
        rows.append({"name": "synthetic", "variant": "default (3 x 1 min)",
                     "status": "generated on first use" + ("" if available() else
                                                            " (needs the synth extra)"),
                     "where": str(base / "synthetic")})
    for manifest in synthetic:
        info = json.loads(manifest.read_text())
        spec = info["spec"]
        rows.append({"name": "synthetic",
                     "variant": f"{spec['n_conversations']} x {spec['minutes']:g} min, "
                                f"speakers {spec['n_speakers']}, seed {spec['seed']}"
                                + (f", profile {spec['profile']}"
                                   if spec.get("profile", "default") != "default" else ""),
                     "status": f"cached ({len(info['recordings'])} recordings)",
                     "where": str(manifest.parent)})
    for derived in sorted((base / "derived").glob("*/derived.json")):
        info = json.loads(derived.read_text())
        rows.append({"name": "noisy", "variant": derived.parent.name.rsplit("-", 1)[0],
                     "status": f"cached ({len(info['sources'])} recordings)",
                     "where": str(derived.parent)})
    for derived in sorted((base / "telephone").glob("*/telephone.json")):
        info = json.loads(derived.read_text())
        loss = info["channel"]["loss"]
        rows.append({"name": "telephone", "variant": derived.parent.name.rsplit("-", 1)[0]
                     + (f", loss {loss:g}" if loss else ""),
                     "status": f"cached ({len(info['sources'])} recordings)",
                     "where": str(derived.parent)})
    for manifest in sorted((base / "mixtures").glob("*/dataset.json")):
        info = json.loads(manifest.read_text())
        rows.append({"name": "mixtures", "variant": f"from {info['folder']}",
                     "status": f"cached ({len(info['recordings'])} recordings)",
                     "where": str(manifest.parent)})
    usage = {"noisy": "load('noisy', dataset=..., noise='pink', snr=10); "
                      "CLI: datasets noise DATASET --snr ...",
             "noise-levels": "load('noise-levels', dataset=..., levels=[['pink', 0], ...]): "
                             "every level in one list (the local server of run --snr)",
             "mixtures": "load('mixtures', folder=<speaker dirs of utterances>, ...)",
             "telephone": "load('telephone', dataset=..., loss=0.0); "
                          "CLI: datasets telephone DATASET",
             "calls": "load('calls', seed=S): 4 x 90 s 2-speaker call mixtures, telephone"}
    for name in sorted(set(REGISTRY) - {"ami", "synthetic"}):
        rows.append({"name": name, "variant": usage.get(name, ""), "status": "registered",
                     "where": ""})
    rows.append({"name": "<folder>", "variant": "any folder of audio + RTTM (+ UEM)",
                 "status": "", "where": "--dataset path/to/folder"})
    return rows


def format_listing(rows: list[dict]) -> str:
    """A plain-text table of :func:`list_datasets` rows."""
    headers = ("name", "variant", "status", "where")
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths)).rstrip())
    return "\n".join(lines)
