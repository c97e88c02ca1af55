"""diareval's DER against md-eval-22.pl itself, on random multi-file cases.

md-eval-22.pl is not vendored (NIST; get it e.g. from nryant/dscore
``scorelib/md-eval-22.pl``). Point ``DIAREVAL_MD_EVAL`` at it to run this test; it needs
``perl``. Without it the test skips (test_der.py pins md-eval's numbers on hand cases).
Run once on this machine: 120 random cases, 117 equal on every component, 3 where
md-eval itself died ("Illegal division by zero"); those are skipped here too.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pyannote.core import Annotation

from diareval.datasets import load_rttm, load_uem
from diareval.score.der import Conventions, DERResult, der
from fixtures import write_rttm, write_uem

MD_EVAL = os.environ.get("DIAREVAL_MD_EVAL")


def md_eval(ref: Path, hyp: Path, uem: Path, collar: float, skip: bool) -> dict | None:
    command = ["perl", MD_EVAL, "-af", "-r", str(ref), "-s", str(hyp), "-c", str(collar),
               "-u", str(uem)] + (["-1"] if skip else [])
    run = subprocess.run(command, capture_output=True, text=True)
    if "Illegal division by zero" in run.stderr + run.stdout:
        return None

    def value(key):
        return float(re.findall(key + r"\s*=\s*([\d.]+)", run.stdout)[-1])
    return dict(total=value("SCORED SPEAKER TIME"), miss=value("MISSED SPEAKER TIME"),
                fa=value("FALARM SPEAKER TIME"), conf=value("SPEAKER ERROR TIME"))


def ours(ref: Path, hyp: Path, uem: Path, collar: float, skip: bool) -> dict:
    references, hypotheses, uems = load_rttm(ref), load_rttm(hyp), load_uem(uem)
    total = sum((der(references[uri], hypotheses.get(uri, Annotation(uri=uri)), uems[uri],
                     Conventions(collar=collar, skip_overlap=skip, unknown="label"))
                 for uri in references), DERResult())
    return dict(total=total.reference_speech, miss=total.miss, fa=total.false_alarm,
                conf=total.confusion)


@pytest.mark.skipif(not MD_EVAL or not shutil.which("perl"),
                    reason="set DIAREVAL_MD_EVAL to md-eval-22.pl (and have perl) to run")
@pytest.mark.parametrize("seed", range(30))
def test_random_case_matches_md_eval(tmp_path, seed):
    rng = random.Random(seed)

    def turn(latest_start: float, prefix: str, n_speakers: int) -> tuple[float, float, str]:
        # the draws in the order of the cases run against md-eval (start, duration, speaker)
        start, duration = round(rng.uniform(0, latest_start), 2), round(rng.uniform(0.1, 6), 2)
        return start, start + duration, f"{prefix}{rng.randint(0, n_speakers - 1)}"

    refs, hyps, uems = {}, {}, {}
    for f in range(3):
        refs[f"f{f}"] = [turn(60, "s", 4) for _ in range(rng.randint(1, 15))]
        hyps[f"f{f}"] = [turn(62, "h", 5) for _ in range(rng.randint(1, 15))]
        uems[f"f{f}"] = [(round(rng.uniform(0, 5), 2), round(rng.uniform(55, 70), 2))]
    ref = write_rttm(tmp_path / "ref.rttm", refs)
    hyp = write_rttm(tmp_path / "hyp.rttm", hyps)
    uem = write_uem(tmp_path / "all.uem", uems)
    collar, skip = rng.choice([0.0, 0.25]), rng.random() < 0.5
    theirs = md_eval(ref, hyp, uem, collar, skip)
    if theirs is None:
        pytest.skip("md-eval-22.pl died on this case (Illegal division by zero)")
    mine = ours(ref, hyp, uem, collar, skip)
    for key in theirs:
        # md-eval prints 6 decimals; RTTM times have 2
        assert mine[key] == pytest.approx(theirs[key], abs=2e-6), (key, mine, theirs)
