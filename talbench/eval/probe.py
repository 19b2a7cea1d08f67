"""Linear probe: how much of a latent factor a representation carries linearly.

Used to turn RefactorNet's figure 4 (phi_A attends to the action, phi_C to the scene) into a number on the
synthetic benchmark, whose sidecar latents give every snippet's context label: a ridge least-squares classifier
on one-hot targets (closed form, deterministic) is fitted on training-video snippets and its accuracy measured
on test-video snippets. Features are standardised with the training statistics; the bias is an extra column
that is not penalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ProbeResult:
    accuracy: float  # fraction in [0, 1] of correctly predicted test labels
    chance: float  # accuracy of always predicting the most frequent training label
    num_train: int
    num_test: int
    num_classes: int


def ridge_classify(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """The labels ``argmax(x W + b)`` predicts for ``test_x``, ``W, b`` fitted by ridge regression onto one-hot
    training labels. ``l2`` is the ridge penalty on standardised features (times the number of training samples)."""
    train_x = np.asarray(train_x, dtype=np.float64)
    test_x = np.asarray(test_x, dtype=np.float64)
    train_y = np.asarray(train_y, dtype=np.int64)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"probe features must be (N, D) with equal D, got {train_x.shape} and {test_x.shape}")
    if train_x.shape[0] != train_y.shape[0]:
        raise ValueError("probe features and labels differ in length")
    if train_x.shape[0] == 0 or test_x.shape[0] == 0:
        raise ValueError("probe needs at least one training and one test sample")
    classes, train_codes = np.unique(train_y, return_inverse=True)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-8
    x_tr = torch.from_numpy(np.hstack([(train_x - mean) / std, np.ones((train_x.shape[0], 1))]))
    x_te = torch.from_numpy(np.hstack([(test_x - mean) / std, np.ones((test_x.shape[0], 1))]))
    targets = torch.nn.functional.one_hot(torch.from_numpy(train_codes), classes.size).double()
    penalty = torch.eye(x_tr.shape[1], dtype=torch.float64) * l2 * x_tr.shape[0]
    penalty[-1, -1] = 0.0
    weights = torch.linalg.solve(x_tr.T @ x_tr + penalty, x_tr.T @ targets)
    return classes[(x_te @ weights).argmax(dim=1).numpy()]


def linear_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, l2: float = 1e-2
) -> ProbeResult:
    """Fit ``argmax(x W + b)`` by ridge regression onto one-hot labels (:func:`ridge_classify`) and score it on
    the test set."""
    test_y = np.asarray(test_y, dtype=np.int64)
    if np.shape(test_x)[0] != test_y.shape[0]:
        raise ValueError("probe features and labels differ in length")
    predicted = ridge_classify(train_x, train_y, test_x, l2)
    classes, train_codes = np.unique(np.asarray(train_y, dtype=np.int64), return_inverse=True)
    counts = np.bincount(train_codes, minlength=classes.size)
    return ProbeResult(
        accuracy=float((predicted == test_y).mean()),
        chance=float((test_y == classes[counts.argmax()]).mean()),
        num_train=int(train_x.shape[0]),
        num_test=int(test_x.shape[0]),
        num_classes=int(classes.size),
    )
