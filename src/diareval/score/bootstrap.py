"""Bootstrap confidence intervals over sessions (seeded), and the paired bootstrap.

Every measure here is a pooled ratio (correct turns / scored turns, errors / reference
speech, ...) and sessions are the independent unit: turns of one session are not
independent (same speakers, same acoustics). So each replicate draws sessions with
replacement and recomputes the pooled ratio of every bucket from per-session counts;
the interval is the percentile interval of the replicates. A replicate in which a
bucket has no denominator is left out of that bucket's interval (``n_valid`` says how
many remained).

For counts (turns correct out of turns scored, unknown out of turns) the percentile
bootstrap collapses to a point when a bucket has no error at all (every replicate is
1.0), which claims a certainty the data do not have. With ``wilson=True`` the interval
is the union of the bootstrap interval and the Wilson score interval of the pooled
counts, so it is never narrower than the binomial one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from diareval.errors import ConfigError


def _matrices(counts: pd.DataFrame, session: str, by: str | None, numerator: str,
              denominator: str, sessions=None, buckets=None):
    key = by if by is not None else "__all__"
    work = counts if by is not None else counts.assign(__all__="all")
    sessions = list(dict.fromkeys(work[session])) if sessions is None else list(sessions)
    buckets = list(dict.fromkeys(work[key])) if buckets is None else list(buckets)
    num = work.pivot_table(index=session, columns=key, values=numerator, aggfunc="sum",
                           fill_value=0, observed=True).reindex(index=sessions, columns=buckets,
                                                                 fill_value=0)
    den = work.pivot_table(index=session, columns=key, values=denominator, aggfunc="sum",
                           fill_value=0, observed=True).reindex(index=sessions, columns=buckets,
                                                                 fill_value=0)
    return sessions, buckets, num.to_numpy(float), den.to_numpy(float)


def _weights(n_sessions: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_sessions, np.full(n_sessions, 1.0 / n_sessions), size=n_boot)


def _interval(replicates: np.ndarray, level: float):
    valid = np.isfinite(replicates)
    lo = np.full(replicates.shape[1], np.nan)
    hi = np.full(replicates.shape[1], np.nan)
    for j in range(replicates.shape[1]):
        values = replicates[valid[:, j], j]
        if len(values):
            lo[j], hi[j] = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return lo, hi, valid.sum(axis=0)


def wilson_interval(successes: np.ndarray, trials: np.ndarray, level: float = 0.95):
    """Wilson score interval of a binomial proportion (NaN where ``trials`` is 0)."""
    from scipy.stats import norm
    z = norm.ppf(0.5 + level / 2)
    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = successes / trials
        centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
        half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / \
            (1 + z * z / trials)
    lo = np.clip(centre - half, 0.0, 1.0)
    hi = np.clip(centre + half, 0.0, 1.0)
    return np.where(trials > 0, lo, np.nan), np.where(trials > 0, hi, np.nan)


def bootstrap_ratio(counts: pd.DataFrame, numerator: str, denominator: str, by: str | None = None,
                    session: str = "uri", n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95, wilson: bool = False) -> pd.DataFrame:
    """Pooled ratio sum(numerator)/sum(denominator) per bucket of ``by``, with a percentile
    bootstrap interval over sessions. Columns: ``by`` (if given), ``estimate``, ``lo``,
    ``hi``, ``n_sessions``, ``n_valid``, ``note``."""
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    columns = ([by] if by else []) + ["estimate", "lo", "hi", "n_sessions", "n_valid", "note"]
    if counts.empty:
        return pd.DataFrame(columns=columns)
    sessions, buckets, num, den = _matrices(counts, session, by, numerator, denominator)
    total_num, total_den = num.sum(axis=0), den.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.where(total_den > 0, total_num / np.where(total_den > 0, total_den, 1),
                            np.nan)
        weights = _weights(len(sessions), n_boot, seed)
        rep_num, rep_den = weights @ num, weights @ den
        replicates = np.where(rep_den > 0, rep_num / np.where(rep_den > 0, rep_den, 1), np.nan)
    lo, hi, n_valid = _interval(replicates, level)
    if wilson:
        w_lo, w_hi = wilson_interval(total_num, total_den, level)
        lo, hi = np.fmin(lo, w_lo), np.fmax(hi, w_hi)
    frame = pd.DataFrame({"estimate": estimate, "lo": lo, "hi": hi,
                          "n_sessions": (den > 0).sum(axis=0), "n_valid": n_valid})
    frame["note"] = np.where(total_den > 0, "", f"no {denominator} in this bucket")
    if by:
        frame.insert(0, by, buckets)
    frame.attrs.update(counts.attrs)
    frame.attrs["bootstrap"] = f"{n_boot} replicates over sessions, seed {seed}, {level:.0%} " \
                               "percentile interval"
    return frame


def paired_bootstrap(counts_a: pd.DataFrame, counts_b: pd.DataFrame, numerator: str,
                     denominator: str, by: str | None = None, session: str = "uri",
                     n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Difference ``ratio(b) - ratio(a)`` of two configurations scored on the same recordings,
    with a paired bootstrap: each replicate draws the same sessions for both. Only sessions
    present in both are used (``n_sessions``); ``p_b_lower`` is the share of replicates in
    which b's ratio is below a's."""
    common = [s for s in dict.fromkeys(counts_a[session]) if s in set(counts_b[session])]
    columns = ([by] if by else []) + ["a", "b", "difference", "lo", "hi", "p_b_lower",
                                      "n_sessions", "note"]
    if not common:
        raise ConfigError("paired bootstrap: the two configurations share no session")
    key_a = counts_a[by] if by else None
    buckets = list(dict.fromkeys(list(key_a) + list(counts_b[by]))) if by else None
    _, buckets, num_a, den_a = _matrices(counts_a, session, by, numerator, denominator,
                                         common, buckets)
    _, _, num_b, den_b = _matrices(counts_b, session, by, numerator, denominator, common, buckets)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = lambda n, d: np.where(d > 0, n / np.where(d > 0, d, 1), np.nan)  # noqa: E731
        a, b = ratio(num_a.sum(0), den_a.sum(0)), ratio(num_b.sum(0), den_b.sum(0))
        weights = _weights(len(common), n_boot, seed)
        rep = ratio(weights @ num_b, weights @ den_b) - ratio(weights @ num_a, weights @ den_a)
    lo, hi, _ = _interval(rep, level)
    with np.errstate(invalid="ignore"):
        p_lower = np.nanmean(np.where(np.isfinite(rep), rep < 0, np.nan), axis=0)
    frame = pd.DataFrame({"a": a, "b": b, "difference": b - a, "lo": lo, "hi": hi,
                          "p_b_lower": p_lower, "n_sessions": len(common)})
    frame["note"] = np.where(np.isfinite(b - a), "", "a bucket without data in a or b")
    if by:
        frame.insert(0, by, buckets)
    frame.attrs["bootstrap"] = f"paired, {n_boot} replicates over {len(common)} sessions, " \
                               f"seed {seed}, {level:.0%} percentile interval"
    return frame[columns]


def breakdown_with_ci(table: pd.DataFrame, by: str, session: str = "uri", n_boot: int = 1000,
                      seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """:func:`diareval.score.turns.breakdown` plus bootstrap intervals over sessions on the
    accuracy (``accuracy_lo/hi``) and the unknown rate (``unknown_rate_lo/hi``), never
    narrower than the Wilson interval (see the module docstring)."""
    from diareval.score.turns import breakdown, turn_counts
    base = breakdown(table, by)
    if table.empty:
        return base
    counts = turn_counts(table, by, session=session)
    for measure, num, den in (("accuracy", "n_correct", "n_scored"),
                              ("unknown_rate", "n_unknown", "n_turns")):
        ci = bootstrap_ratio(counts, num, den, by=by, session=session, n_boot=n_boot,
                             seed=seed, level=level, wilson=True).set_index(by)
        keys = base[by].astype(object)
        base[f"{measure}_lo"] = ci["lo"].reindex(keys).to_numpy()
        base[f"{measure}_hi"] = ci["hi"].reindex(keys).to_numpy()
    base["n_sessions"] = counts[counts["n_turns"] > 0].groupby(by, observed=True)[session] \
        .nunique().reindex(base[by].astype(object)).to_numpy()
    base.attrs["bootstrap"] = f"{n_boot} replicates over sessions, seed {seed}, {level:.0%}"
    return base
