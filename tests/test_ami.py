"""AMI: the loader on the real setup files, reference words, and download from a fake mirror."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_data
from fixtures import write_rttm, write_uem
from diareval.datasets import DatasetError, load
from diareval.datasets import download as dl
from diareval.datasets.ami import (MICS, download_ami, ensure_ami, load_ami, load_ami_words,
                                   load_agent_names, words_to_annotation)
from diareval.datasets.download import DownloadError, download_file

# ------------------------------------------------------------------ real setup files


def test_ami_test_split_numbers():
    recordings = load_ami(shared_data("ami-setup"), subset="test")
    assert len(recordings) == 16
    assert sum(r.uem.duration() for r in recordings) / 3600 == pytest.approx(9.06, abs=0.005)
    assert sum(len(list(r.reference.itertracks())) for r in recordings) == 7493
    speakers = {r.uri: len(r.speakers) for r in recordings}
    assert speakers.pop("EN2002c") == 3
    assert set(speakers.values()) == {4}
    for r in recordings:
        assert r.uem.duration() == pytest.approx(r.uem.extent().end)  # whole file from 0
        assert r.meta["subset"] == "test" and r.meta["mic"] == "ihm"


def test_ami_without_audio_points_to_download(tmp_path):
    [rec] = load_ami(shared_data("ami-setup"), subset="test", uris=["EN2002c"], mic="sdm")
    assert rec.audio_path.name == "EN2002c.Array1-01.wav"
    assert rec.audio_path.parent.name == "audio" and not rec.audio_path.exists()
    assert rec.duration == pytest.approx(rec.uem.extent().end)
    with pytest.raises(DatasetError, match="datasets download ami --subset test --mic sdm"):
        rec.load_audio()


def test_ami_registry_and_bad_choices(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal, even under pytest -s
    recordings = load("ami", root=shared_data("ami-setup"), subset="dev", download=False)
    assert len(recordings) == 18
    # by name, AMI downloads on first use: without a terminal or yes=True it says how
    with pytest.raises(DatasetError, match="not downloaded.*--yes"):
        load("ami", root=shared_data("ami-setup"), subset="dev")
    with pytest.raises(DatasetError, match="train, dev, test"):
        load_ami(shared_data("ami-setup"), subset="tset")
    with pytest.raises(DatasetError, match="ihm"):
        load_ami(shared_data("ami-setup"), mic="array")


def test_ami_not_downloaded_says_how(tmp_path):
    with pytest.raises(DatasetError, match="datasets download ami --subset test"):
        load_ami(tmp_path, subset="test")


# ------------------------------------------------------------------ reference words

NITE = 'xmlns:nite="http://nite.sourceforge.net/"'
# (agent, start, end, text, punc)
WORDS = {
    "A": [(0.50, 0.80, "Okay", False), (0.80, 0.80, ".", True), (0.80, 1.10, "so", False),
          (1.10, 1.40, "let's", False), (2.00, 2.30, "start", False),
          (5.00, 5.20, "right", False)],
    "B": [(1.30, 1.60, "yeah", False), (3.00, 3.40, "sounds", False),
          (3.40, 3.70, "good", False), (None, None, "um", False)],
}
AGENTS = {"A": "FEE013", "B": "MEE014"}
# The only_words references those words give (touching words merge, pauses split).
FIXTURE_RTTM = [("FEE013", 0.50, 1.40), ("FEE013", 2.00, 2.30), ("FEE013", 5.00, 5.20),
                ("MEE014", 1.30, 1.60), ("MEE014", 3.00, 3.70)]


def _words_xml(uri: str, agent: str) -> str:
    lines = [f'<?xml version="1.0" encoding="ISO-8859-1" standalone="yes"?>',
             f'<nite:root nite:id="{uri}.{agent}.words" {NITE}>']
    for i, (start, end, text, punc) in enumerate(WORDS[agent]):
        times = "" if start is None else f' starttime="{start}" endtime="{end}"'
        extra = ' punc="true"' if punc else ""
        lines.append(f'   <w nite:id="{uri}.{agent}.words{i}"{times}{extra}>{text}</w>')
    lines.append(f'   <vocalsound nite:id="{uri}.{agent}.v0" starttime="9.0" endtime="9.5" '
                 'type="laugh"/>')
    lines.append("</nite:root>")
    return "\n".join(lines) + "\n"


def _meetings_xml(uri: str) -> str:
    speakers = "\n".join(f'    <speaker nxt_agent="{a}" channel="{i}" global_name="{n}"/>'
                         for i, (a, n) in enumerate(AGENTS.items()))
    return (f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<nite:root {NITE}>\n'
            f'  <meeting observation="{uri}" type="scenario">\n{speakers}\n  </meeting>\n'
            '</nite:root>\n')


def _annotations(folder: Path, uri: str) -> None:
    (folder / "words").mkdir(parents=True)
    (folder / "corpusResources").mkdir(parents=True)
    (folder / "corpusResources" / "meetings.xml").write_text(_meetings_xml(uri))
    for agent in AGENTS:
        (folder / "words" / f"{uri}.{agent}.words.xml").write_text(_words_xml(uri, agent))


def test_words_parse_and_line_up_with_rttm(tmp_path):
    _annotations(tmp_path, "ES2004a")
    agents = load_agent_names(tmp_path / "corpusResources" / "meetings.xml")
    assert agents == {"ES2004a": AGENTS}
    words = load_ami_words(tmp_path / "words", "ES2004a", agents)
    # punctuation and the untimed word are skipped; sorted by start
    assert [w.text for w in words] == ["Okay", "so", "let's", "yeah", "start", "sounds", "good",
                                       "right"]
    assert words[3].speaker == "MEE014" and words[3].start == 1.30 and words[3].end == 1.60
    derived = words_to_annotation(words, uri="ES2004a")
    got = sorted((label, s.start, s.end) for s, _, label in derived.itertracks(yield_label=True))
    assert got == sorted(FIXTURE_RTTM)
    # every word lies inside a reference segment of its own speaker
    for w in words:
        assert any(label == w.speaker and start <= w.start and w.end <= end
                   for label, start, end in FIXTURE_RTTM)


def test_words_xml_errors_name_the_file(tmp_path):
    (tmp_path / "words").mkdir()
    bad = tmp_path / "words" / "ES2004a.A.words.xml"
    bad.write_text("<nite:root><w starttime='1'>unclosed")
    with pytest.raises(DatasetError, match="ES2004a.A.words.xml"):
        load_ami_words(tmp_path / "words", "ES2004a", {"ES2004a": AGENTS})
    bad.write_text(f'<nite:root {NITE}><w starttime="x" endtime="1">a</w></nite:root>')
    with pytest.raises(DatasetError, match="bad times"):
        load_ami_words(tmp_path / "words", "ES2004a", {"ES2004a": AGENTS})


# ------------------------------------------------------------------ fake mirror

MEETINGS = {"ES2004a": 3.0, "EN2002c": 2.0}  # uri -> seconds of audio


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Static files with Range support, a request log, and injected faults."""

    root: Path
    log: list[tuple[str, str | None]]
    cut_after: dict[str, int]       # path -> send only this many bytes, then drop
    lie_length: dict[str, int]      # path -> announce this many extra bytes (always)
    no_range: set[str]

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool):
        path = self.path.split("?")[0]
        self.log.append((self.command + " " + path, self.headers.get("Range")))
        file = self.root / path.lstrip("/")
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and path not in self.no_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        payload = data[start:]
        self.send_header("Content-Length", str(len(payload) + self.lie_length.get(path, 0)))
        self.end_headers()
        if not body:
            return
        if path in self.cut_after:
            payload = payload[:self.cut_after.pop(path)]
        elif path in self.lie_length:
            pass  # announced more than we send
        self.wfile.write(payload)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server with the real AMI layout: setup files and the corpus mirror."""
    monkeypatch.setattr(dl, "RETRY_DELAY", 0.0)
    site = tmp_path / "site"
    setup = site / "setup"
    (setup / "lists").mkdir(parents=True)
    (setup / "lists" / "test.meetings.txt").write_text("".join(f"{u}\n" for u in MEETINGS))
    rng = np.random.default_rng(0)
    for uri, seconds in MEETINGS.items():
        rttm = setup / "only_words" / "rttms" / "test" / f"{uri}.rttm"
        rttm.parent.mkdir(parents=True, exist_ok=True)
        write_rttm(rttm, {uri: [(0.5, 1.5, "FEE013")]})
        uem = setup / "uems" / "test" / f"{uri}.uem"
        uem.parent.mkdir(parents=True, exist_ok=True)
        write_uem(uem, {uri: [(0.0, seconds)]}, decimals=6)  # as the AMI setup writes them
        for mic in MICS.values():
            wav = site / "corpus" / "AMICorpusMirror" / "amicorpus" / uri / "audio" / \
                f"{uri}.{mic}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            samples = (rng.standard_normal(int(seconds * 16000)) * 3000).astype(np.int16)
            sf.write(str(wav), samples, 16000, subtype="PCM_16")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("corpusResources/meetings.xml", _meetings_xml("ES2004a"))
        for agent in AGENTS:
            zf.writestr(f"words/ES2004a.{agent}.words.xml", _words_xml("ES2004a", agent))
        zf.writestr("dialogueActs/ES2004a.A.dialog-act.xml", "<x/>")
    (site / "corpus" / "AMICorpusAnnotations").mkdir(parents=True)
    (site / "corpus" / "AMICorpusAnnotations" / "ami_public_manual_1.6.2.zip").write_bytes(
        buffer.getvalue())

    handler = type("Handler", (MirrorHandler,), {"root": site, "log": [], "cut_after": {},
                                                 "lie_length": {}, "no_range": set()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("DIAREVAL_AMI_SETUP_URL", base + "/setup")
    monkeypatch.setenv("DIAREVAL_AMI_MIRROR", base + "/corpus")
    yield handler, site
    server.shutdown()
    server.server_close()


AUDIO = "/corpus/AMICorpusMirror/amicorpus/ES2004a/audio/ES2004a.Mix-Headset.wav"


def _gets(handler, path):
    return [rng for request, rng in handler.log if request == "GET " + path]


def test_download_interrupted_then_resumed(mirror, tmp_path):
    handler, site = mirror
    original = (site / AUDIO.lstrip("/")).read_bytes()
    root = tmp_path / "cache"
    handler.cut_after[AUDIO] = 40_000
    # one attempt only: the interruption surfaces as an error and the part file is kept
    dest = root / "ami" / "amicorpus" / "ES2004a" / "audio" / "ES2004a.Mix-Headset.wav"
    with pytest.raises(DownloadError, match="run the download again to resume"):
        download_file(handler_url(handler, AUDIO), dest, retries=0, progress=False)
    part = dest.with_name(dest.name + ".part")
    assert not dest.exists() and part.stat().st_size == 40_000
    # the AMI download resumes it with a Range request and completes the rest
    download_ami(root, subset="test", progress=False)
    assert _gets(handler, AUDIO)[-1] == "bytes=40000-"
    assert dest.read_bytes() == original and not part.exists()
    recordings = load_ami(root, subset="test")
    assert [r.uri for r in recordings] == list(MEETINGS)
    assert len(recordings[0].load_audio()) == int(MEETINGS["ES2004a"] * 16000)
    # idempotent: a second call downloads no audio again
    before = len(handler.log)
    download_ami(root, subset="test", progress=False)
    assert not any("amicorpus" in request for request, _ in handler.log[before:])


def test_interruption_inside_download_ami_is_retried(mirror, tmp_path):
    handler, site = mirror
    handler.cut_after[AUDIO] = 10_000
    download_ami(tmp_path, subset="test", progress=False)
    assert _gets(handler, AUDIO) == [None, "bytes=10000-"]
    assert load_ami(tmp_path, "test")[0].load_audio().size == 48_000


def test_truncated_file_is_an_error_not_data(mirror, tmp_path):
    handler, site = mirror
    handler.lie_length[AUDIO] = 1000  # the server always announces 1000 bytes it never sends
    with pytest.raises(DownloadError, match="truncated"):
        download_ami(tmp_path, subset="test", progress=False)
    dest = tmp_path / "ami" / "amicorpus" / "ES2004a" / "audio" / "ES2004a.Mix-Headset.wav"
    assert not dest.exists()
    with pytest.raises(DatasetError, match="not downloaded"):
        load_ami(tmp_path, "test")[0].load_audio()


def test_wrong_size_and_wrong_length_are_errors(mirror, tmp_path):
    handler, site = mirror
    url = handler_url(handler, AUDIO)
    size = (site / AUDIO.lstrip("/")).stat().st_size
    with pytest.raises(DownloadError, match="expected"):
        download_file(url, tmp_path / "x.wav", expected_size=size + 1, progress=False)
    assert not (tmp_path / "x.wav").exists()
    # a whole file whose audio is shorter than its UEM says is not taken either
    uem = site / "setup" / "uems" / "test" / "EN2002c.uem"
    write_uem(uem, {"EN2002c": [(0.0, 60.0)]}, decimals=6)
    with pytest.raises(DatasetError, match="UEM says 60.00"):
        download_ami(tmp_path / "c", subset="test", progress=False)
    assert not (tmp_path / "c" / "ami" / "amicorpus" / "EN2002c" / "audio" /
                "EN2002c.Mix-Headset.wav").exists()
    # a whole file that is not audio (an HTML error page, say) is not taken either
    write_uem(uem, {"EN2002c": [(0.0, 2.0)]}, decimals=6)
    wav = site / "corpus" / "AMICorpusMirror" / "amicorpus" / "EN2002c" / "audio" / \
        "EN2002c.Mix-Headset.wav"
    wav.write_bytes(b"<html>mirror moved</html>" * 50)
    with pytest.raises(DatasetError, match="EN2002c.Mix-Headset.wav"):
        download_ami(tmp_path / "d", subset="test", progress=False)
    with pytest.raises(DatasetError, match="not downloaded"):
        load_ami(tmp_path / "d", "test", uris=["EN2002c"])[0].load_audio()


def test_server_ignoring_range_restarts_cleanly(mirror, tmp_path):
    handler, site = mirror
    handler.no_range.add(AUDIO)
    dest = tmp_path / "a.wav"
    dest.with_name("a.wav.part").write_bytes(b"garbage" * 100)
    download_file(handler_url(handler, AUDIO), dest, progress=False)
    assert dest.read_bytes() == (site / AUDIO.lstrip("/")).read_bytes()


def test_load_by_name_downloads_on_first_use(mirror, tmp_path):
    handler, site = mirror
    recordings = load("ami", root=tmp_path, subset="test", yes=True)
    assert [r.uri for r in recordings] == list(MEETINGS)
    assert all(r.audio_path.exists() for r in recordings)
    asked = []
    again = load("ami", root=tmp_path, subset="test", confirm=asked.append)
    assert len(again) == 2 and not asked  # nothing missing: no question


def test_words_download_sdm_and_ask(mirror, tmp_path):
    handler, site = mirror
    asked = []
    ensure_ami(tmp_path, subset="test", mic="sdm", words=True, ask_above_bytes=0,
               confirm=lambda message: asked.append(message) or True, progress=False)
    assert asked and "2 meeting(s)" in asked[0]
    recordings = load_ami(tmp_path, subset="test", mic="sdm", words=True, uris=["ES2004a"])
    [rec] = recordings
    assert rec.audio_path.name == "ES2004a.Array1-01.wav" and rec.audio_path.exists()
    assert [w.text for w in rec.words][:3] == ["Okay", "so", "let's"]
    assert not (tmp_path / "ami" / "annotations" / "dialogueActs").exists()
    with pytest.raises(DatasetError, match="--yes"):
        ensure_ami(tmp_path / "other", subset="test", ask_above_bytes=0,
                   confirm=lambda message: False, progress=False)


def handler_url(handler, path: str) -> str:
    import os
    return os.environ["DIAREVAL_AMI_MIRROR"].rsplit("/corpus", 1)[0] + path


# ------------------------------------------------------------------ command line


def test_cli_download_then_list(mirror, tmp_path, capsys):
    from diareval.cli import main

    handler, site = mirror
    assert main(["datasets", "download", "ami", "--subset", "test", "--root", str(tmp_path),
                 "--words", "--yes"]) == 0
    assert "ready in" in capsys.readouterr().out
    assert all((tmp_path / "ami" / "amicorpus" / uri / "audio" / f"{uri}.Mix-Headset.wav")
               .exists() for uri in MEETINGS)
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "ihm audio 2/2, sdm audio 0/2, words" in listing
    assert "not downloaded" in listing  # train and dev
    assert "synthetic" in listing and "<folder>" in listing


def test_cli_error_is_one_line(tmp_path, capsys, monkeypatch):
    from diareval.cli import main

    monkeypatch.setenv("DIAREVAL_AMI_SETUP_URL", "http://127.0.0.1:9/nowhere")
    monkeypatch.setattr(dl, "RETRY_DELAY", 0.0)
    assert main(["datasets", "download", "ami", "--root", str(tmp_path), "--yes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diareval: error:") and "test.meetings.txt" in err
