"""/api/v1/datasets on both backends: every bad file is a 4xx naming its problem and stores
nothing; uploads are content-addressed; a dataset in use cannot be deleted; a spec must name
a dataset that exists and an objective that fits its task."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from search import store
from service.app import create_app
from service.settings import Settings
from tests.tabular_data import (
    classification_frame,
    csv_bytes,
    parquet_bytes,
    regression_frame,
    small_spec,
)

URL = "/api/v1/datasets"


@pytest.fixture
def client(migrated_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=migrated_url), recover=False)
    with TestClient(app) as c:
        yield c


def _upload(client: TestClient, filename: str, data: bytes, **form: str):  # type: ignore[no-untyped-def]
    return client.post(URL, files={"file": (filename, data)}, data={"target": "animal"} | form)


def _stored(url: str) -> tuple[int, int]:
    with store.session_scope(store.make_session_factory(url)) as s:
        datasets = s.scalar(select(func.count()).select_from(store.DatasetRow))
        blobs = s.scalar(select(func.count()).select_from(store.BlobRow))
    return int(datasets or 0), int(blobs or 0)


def _bad_files() -> list[tuple[str, str, bytes, dict[str, str], int, list[str]]]:
    good = classification_frame()
    one_class = good.assign(animal="cat")
    few = good.copy()
    few.loc[:2, "animal"] = "fish"
    wordy = good.assign(note=[f"note {i}" for i in range(len(good))])
    holes = good.copy()
    holes.loc[6, "x2"] = np.nan  # data row 7
    infinite = good.copy()
    infinite.loc[3, "x1"] = np.inf  # data row 4
    return [
        ("spreadsheet", "data.xlsx", b"PK\x03\x04 not a table", {}, 415, ["not a CSV or Parquet"]),
        ("fake parquet", "data.parquet", csv_bytes(good), {}, 415, ["not a Parquet file"]),
        ("not utf-8", "data.csv", "x1,animal\n1,chat\n2,b\xe9te\n".encode("latin-1"), {}, 422,
         ["not UTF-8", "line 3"]),
        ("empty", "data.csv", b"", {}, 422, ["empty"]),
        ("header only", "data.csv", b"x1,x2,animal\n", {}, 422, ["no data rows"]),
        ("ragged", "data.csv", b"x1,x2,animal\n1,2,cat\n1,2,3,dog\n", {}, 422,
         ["not a valid CSV", "line 3"]),
        ("missing target", "data.csv", csv_bytes(good), {"target": "species"}, 422,
         ["target column 'species' not found"]),
        ("single class", "data.csv", csv_bytes(one_class), {}, 422, ["single class"]),
        ("too few rows", "data.csv", csv_bytes(few), {}, 422, ["class 'fish'", "3 row(s)"]),
        ("high cardinality", "data.csv", csv_bytes(wordy), {}, 422,
         ["column 'note'", "150 distinct"]),
        ("missing values", "data.csv", csv_bytes(holes), {}, 422,
         ["column 'x2'", "row 7", "impute"]),
        ("infinite", "data.csv", csv_bytes(infinite), {}, 422, ["column 'x1'", "row 4"]),
        ("text regression target", "data.csv", csv_bytes(good), {"task": "regression"}, 422,
         ["not numeric"]),
        ("built-in name", "data.csv", csv_bytes(good), {"name": "digits"}, 422, ["built-in"]),
        ("damaged parquet", "data.parquet", parquet_bytes(good)[:200], {}, 422,
         ["not a valid Parquet"]),
    ]  # fmt: skip


def test_bad_files_are_4xx_naming_the_problem_and_store_nothing(
    client: TestClient, migrated_url: str
) -> None:
    for case, filename, data, form, status, words in _bad_files():
        r = _upload(client, filename, data, **form)
        assert r.status_code == status, (case, r.text)
        text = r.text.replace("\\u00e9", "é")
        for word in words:
            assert word in text, (case, word, text)
        assert _stored(migrated_url) == (0, 0), case
    holes = classification_frame()
    holes.loc[6, "x2"] = np.nan
    r = _upload(client, "holes.csv", csv_bytes(holes), impute="true")
    assert r.status_code == 201, r.text
    assert r.json()["columns"][1] | {"dtype": ""} == {
        "name": "x2", "kind": "numeric", "dtype": "", "missing": 1, "distinct": None,
    }  # fmt: skip
    assert _stored(migrated_url) == (1, 1)


def test_upload_describes_the_table_and_is_content_addressed(
    client: TestClient, migrated_url: str
) -> None:
    data = csv_bytes(classification_frame())
    first = _upload(client, "pets.csv", data)
    assert first.status_code == 201, first.text
    ds = first.json()
    assert (ds["name"], ds["task"], ds["task_inferred"], ds["n_rows"]) == (
        "pets",
        "classification",
        True,
        150,
    )
    assert [(c["name"], c["kind"]) for c in ds["columns"]] == [
        ("x1", "numeric"), ("x2", "numeric"), ("colour", "categorical"),
    ]  # fmt: skip
    assert set(ds["target_summary"]["classes"]) == {"bird", "cat", "dog"}
    again = _upload(client, "copy.csv", data)
    assert again.status_code == 200 and again.json()["id"] == ds["id"]
    # The same bytes for another target are another dataset sharing the stored bytes.
    other = _upload(client, "pets.csv", data, target="colour", name="colours")
    assert other.status_code == 201 and other.json()["id"] != ds["id"]
    assert _stored(migrated_url) == (2, 1)
    taken = _upload(client, "pets.csv", csv_bytes(classification_frame(seed=1)))
    assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
    regression = _upload(
        client, "houses.parquet", parquet_bytes(regression_frame()), target="price"
    )
    assert regression.status_code == 201, regression.text
    summary = regression.json()["target_summary"]
    assert (
        regression.json()["task"] == "regression"
        and summary["min"] < summary["mean"] < summary["max"]
    )
    listed = client.get(URL, params={"limit": 2}).json()
    assert listed["count"] == 3 and [d["name"] for d in listed["data"]] == ["houses", "colours"]
    assert client.get(f"{URL}/{ds['id']}").json() == ds
    assert client.get(f"{URL}/999").status_code == 404


def test_specs_name_uploaded_datasets_that_fit_their_objective(client: TestClient) -> None:
    pets = _upload(client, "pets.csv", csv_bytes(classification_frame())).json()
    houses = _upload(client, "houses.csv", csv_bytes(regression_frame()), target="price").json()
    post = client.post
    unknown = post("/api/v1/studies", json=small_spec("s", "no-such-data"))
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "dataset"]
    missing_id = post("/api/v1/studies", json=small_spec("s", 999))
    assert missing_id.status_code == 422 and "id 999" in missing_id.text
    wrong = post("/api/v1/studies", json=small_spec("s", "pets", metric="dev_rmse"))
    assert wrong.status_code == 422 and "needs a regression dataset" in wrong.text
    wrong = post("/api/v1/studies", json=small_spec("s", houses["id"], metric="dev_accuracy"))
    assert wrong.status_code == 422 and "needs a classification dataset" in wrong.text
    huge = small_spec("s", "pets")
    huge["training"]["hidden"] = [8192] * 16
    too_large = post("/api/v1/studies", json=huge)  # its inputs: 2 numbers + 3 colours
    assert too_large.status_code == 422 and "training.hidden" in too_large.text
    by_name = post("/api/v1/studies", json=small_spec("s", "pets", metric="dev_accuracy"))
    assert by_name.status_code == 201, by_name.text
    study = by_name.json()
    assert (study["dataset"], study["dataset_id"], study["task"]) == (
        "pets",
        pets["id"],
        "classification",
    )
    assert study["spec"]["dataset"]["id"] == pets["id"]
    assert study["test"]["state"] == "pending"
    by_id = post("/api/v1/studies", json=small_spec("r", houses["id"], metric="dev_rmse"))
    assert by_id.status_code == 201 and by_id.json()["task"] == "regression"
    # In use: 409 and nothing deleted; no model before a trial completes.
    busy = client.delete(f"{URL}/{pets['id']}")
    assert busy.status_code == 409 and f"study {study['id']}" in busy.json()["detail"]
    assert client.get(f"{URL}/{pets['id']}").status_code == 200
    assert client.get(f"/api/v1/studies/{study['id']}/model").status_code == 404
    assert client.post(f"/api/v1/studies/{study['id']}/cancel").status_code == 200
    assert client.delete(f"{URL}/{pets['id']}").status_code == 409  # its test is still to come
    with store.session_scope(client.app.state.session_factory) as s:  # type: ignore[attr-defined]
        store.claim_test(session=s, study_id=study["id"], stale_after_s=30)
        store.record_test(
            session=s, study_id=study["id"], state=store.TEST_NONE, trial_number=None, metrics=None
        )
    assert client.delete(f"{URL}/{pets['id']}").status_code == 204
    assert client.get(f"{URL}/{pets['id']}").status_code == 404
    assert client.delete(f"{URL}/{pets['id']}").status_code == 404


def test_uploads_over_the_limit_are_413_and_store_nothing(sqlite_url: str) -> None:
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    app = create_app(Settings(database_url=sqlite_url, max_upload_mb=0.004), recover=False)
    big = csv_bytes(classification_frame(n=400))  # about 20 KB
    with TestClient(app) as c:
        declared = _upload(c, "big.csv", big)
        assert declared.status_code == 413 and "HPS_MAX_UPLOAD_MB" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while streaming
            yield b'--b\r\nContent-Disposition: form-data; name="target"\r\n\r\nanimal\r\n'
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]
            yield b"\r\n--b--\r\n"

        streamed = c.post(
            URL, content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert streamed.status_code == 413
        small = _upload(c, "small.csv", csv_bytes(classification_frame(n=60)))
        assert small.status_code == 201, small.text
    assert _stored(sqlite_url) == (1, 1)


def test_cnn_and_augmentation_are_refused_for_an_uploaded_table(client: TestClient) -> None:
    pets = _upload(client, "pets.csv", csv_bytes(classification_frame())).json()
    cases = [
        ({"model": "cnn"}, ["body", "model"], "cnn needs an image dataset"),
        ({"training": {"augment_shift": 1}}, ["body", "training", "augment_shift"], "image"),
        (
            {"search": {"space": {"augment_rotation": {"type": "float", "low": 0, "high": 5}}}},
            ["body", "search", "space", "augment_rotation"],
            "augmentation needs an image dataset",
        ),
    ]
    for extra, loc, words in cases:
        spec = small_spec("s", pets["id"])
        spec["model"] = extra.get("model", "mlp")
        spec["training"] |= extra.get("training", {})
        spec["search"]["space"] |= extra.get("search", {}).get("space", {})
        refused = client.post("/api/v1/studies", json=spec)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"][0]
        assert detail["loc"] == loc and words in detail["msg"]
    # a built-in table is refused when the spec is read, naming the field too
    iris = client.post("/api/v1/studies", json={"name": "c", "dataset": "iris", "model": "cnn"})
    assert iris.status_code == 422 and "model: cnn needs an image dataset" in iris.text
