"""The learned state of the River models we use, as plain JSON-ready data, and back.

Model snapshots travel on a topic every worker reads: they must be *data*, never code
(unpickling a message runs whatever its writer chose). Only the few River estimators the
models use are covered, each by the attributes that hold what it learned; their
hyper-parameters are rebuilt by our own code, and a test checks that a round trip predicts
exactly what the original does.

>>> from river import preprocessing
>>> scaler = preprocessing.StandardScaler()
>>> scaler.learn_one({"a": 1.0}); scaler.learn_one({"a": 3.0})
>>> copy = load_scaler(preprocessing.StandardScaler(), dump_scaler(scaler))
>>> copy.transform_one({"a": 4.0}) == scaler.transform_one({"a": 4.0})
True
"""

from __future__ import annotations

from typing import Any

from river import cluster, linear_model, preprocessing


def dump_scaler(scaler: preprocessing.StandardScaler) -> dict[str, Any]:
    return {
        "counts": dict(scaler.counts),
        "means": dict(scaler.means),
        "vars": dict(scaler.vars),
    }


def load_scaler(
    scaler: preprocessing.StandardScaler, state: dict[str, Any]
) -> preprocessing.StandardScaler:
    scaler.counts.update(state["counts"])
    scaler.means.update(state["means"])
    scaler.vars.update(state["vars"])
    return scaler


def dump_logistic(model: linear_model.LogisticRegression) -> dict[str, Any]:
    return {
        "weights": dict(model._weights),
        "intercept": model.intercept,
        "iterations": model.optimizer.n_iterations,
    }


def load_logistic(
    model: linear_model.LogisticRegression, state: dict[str, Any]
) -> linear_model.LogisticRegression:
    for name, weight in state["weights"].items():
        model._weights[name] = weight
    model.intercept = state["intercept"]
    model.optimizer.n_iterations = state["iterations"]
    return model


def dump_kmeans(model: cluster.KMeans) -> dict[str, Any]:
    version, internal, gauss_next = model._rng.getstate()
    return {
        "centers": {str(i): dict(center) for i, center in model.centers.items()},
        # Centres draw a random start for each feature they first meet: keep the generator.
        "rng": [version, list(internal), gauss_next],
    }


def load_kmeans(model: cluster.KMeans, state: dict[str, Any]) -> cluster.KMeans:
    for i, center in state["centers"].items():
        model.centers[int(i)].update(center)
    version, internal, gauss_next = state["rng"]
    model._rng.setstate((version, tuple(internal), gauss_next))
    return model
