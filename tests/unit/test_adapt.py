"""The file model: trained on the blend's confident ends, sample rows scored out of fold."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from shared.engine.adapt import FileModel


def test_the_file_model_learns_what_the_top_rows_share_and_ranks_the_rest_by_it() -> None:
    rng = np.random.default_rng(5)
    n = 30_000
    fraud = rng.random(n) < 0.02
    x = rng.normal(0, 1, (n, 6))
    x[fraud, 0] += 3  # what the frauds share: a column the noisy score only half sees
    noisy = x[:, 0] + rng.normal(0, 2, n)
    rows = np.sort(rng.choice(n, 6_000, replace=False))
    model = FileModel.fit(rows, x[rows], noisy[rows], threads=2)
    scores = np.concatenate([model.predict(x[i : i + 7_000], i) for i in range(0, n, 7_000)])
    assert roc_auc_score(fraud, scores) > roc_auc_score(fraud, noisy) + 0.05


def test_sample_rows_get_their_out_of_fold_scores_and_small_samples_get_no_model() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (2_000, 3))
    rows = np.arange(0, 2_000, 2)
    model = FileModel.fit(rows, x[rows], x[rows, 0])
    scores = model.predict(x[100:200], 100)
    np.testing.assert_array_equal(scores[::2], model.oof[50:100])
    assert not np.array_equal(scores[::2], model.predict(x[101:201], 101)[::2])
    assert FileModel.usable(1_000) and not FileModel.usable(500)
