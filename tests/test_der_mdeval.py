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
    line = "SPEAKER {} 1 {:.2f} {:.2f} <NA> <NA> {} <NA> <NA>\n"
    refs, hyps, uems = [], [], []
    for f in range(3):
        for _ in range(rng.randint(1, 15)):
            refs.append(line.format(f"f{f}", rng.uniform(0, 60), rng.uniform(0.1, 6),
                                    f"s{rng.randint(0, 3)}"))
        for _ in range(rng.randint(1, 15)):
            hyps.append(line.format(f"f{f}", rng.uniform(0, 62), rng.uniform(0.1, 6),
                                    f"h{rng.randint(0, 4)}"))
        uems.append(f"f{f} 1 {rng.uniform(0, 5):.2f} {rng.uniform(55, 70):.2f}\n")
    ref, hyp, uem = tmp_path / "ref.rttm", tmp_path / "hyp.rttm", tmp_path / "all.uem"
    ref.write_text("".join(refs))
    hyp.write_text("".join(hyps))
    uem.write_text("".join(uems))
    collar, skip = rng.choice([0.0, 0.25]), rng.random() < 0.5
    theirs = md_eval(ref, hyp, uem, collar, skip)
    if theirs is None:
        pytest.skip("md-eval-22.pl died on this case (Illegal division by zero)")
    mine = ours(ref, hyp, uem, collar, skip)
    for key in theirs:
        # md-eval prints 6 decimals; RTTM times have 2
        assert mine[key] == pytest.approx(theirs[key], abs=2e-6), (key, mine, theirs)
