"""/api/v1/datasets: upload a CSV or Parquet table (multipart), list, read, delete.

An upload streams to a spooled temporary file (memory up to 1 MB, then disk) under the
``HPS_MAX_UPLOAD_MB`` limit (``service.middleware.BodyLimit``), is hashed, read and checked, and is
stored in one transaction, or not at all. Reading and checking the table imports pandas and
the models package (torch) on the first upload only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile, status

from search import store
from service.auth import PrincipalDep, SignedInDep, changeable, owner_filter
from service.deps import ReadSessionDep, SessionDep, SessionFactoryDep
from service.errors import BadRequest, Conflict, Unsupported
from service.schemas import DatasetColumn, DatasetPublic, DatasetsPublic, ErrorPublic

router = APIRouter(prefix="/datasets", tags=["datasets"])
Responses = dict[int | str, dict[str, Any]]
DatasetId = Annotated[int, Path(ge=0, le=2**31 - 1, description="dataset id")]
NOT_FOUND: Responses = {404: {"model": ErrorPublic, "description": "No such dataset"}}
UPLOAD_ERRORS: Responses = {
    200: {"model": DatasetPublic, "description": "The same upload was stored before: that one"},
    400: {"model": ErrorPublic, "description": "The multipart body could not be parsed"},
    409: {"model": ErrorPublic, "description": "Another dataset has this name"},
    413: {"model": ErrorPublic, "description": "Larger than HPS_MAX_UPLOAD_MB"},
    415: {"model": ErrorPublic, "description": "Not a CSV or Parquet file"},
}


def dataset_public(row: store.DatasetRow) -> DatasetPublic:
    summary = row.summary or {}
    return DatasetPublic.model_validate(
        {
            **{c: getattr(row, c) for c in DatasetPublic.model_fields if hasattr(row, c)},
            "columns": [DatasetColumn.model_validate(c) for c in summary.get("columns", [])],
            "target_summary": summary.get("target", {}),
        }
    )


@router.post(
    "",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    responses=UPLOAD_ERRORS,
)
def upload_dataset(
    response: Response,
    factory: SessionFactoryDep,
    principal: SignedInDep,
    file: Annotated[UploadFile, File(description="A CSV (UTF-8, with a header) or Parquet file")],
    target: Annotated[str, Form(min_length=1, max_length=200, description="Target column")],
    task: Annotated[
        Literal["classification", "regression"] | None,
        Form(
            description="Inferred when omitted: a non-float or low-cardinality target is "
            "classification"
        ),
    ] = None,
    impute: Annotated[
        bool,
        Form(
            description="Fill missing values with the training split's median (numbers) "
            "or most frequent value (text) instead of refusing the file"
        ),
    ] = False,
    name: Annotated[
        str | None, Form(min_length=1, max_length=200, description="Default: the file's stem")
    ] = None,
) -> DatasetPublic:
    """Upload a table to train on. Re-uploading the same bytes with the same target, task
    and imputation returns the dataset already stored (200)."""
    from search.datasets import DatasetError, Upload, ingest_dataset  # pandas, torch

    upload = Upload(file.file, file.filename or "", target, task, impute, name)
    try:
        row, created = ingest_dataset(session_factory=factory, upload=upload, owner=principal.user)
    except DatasetError as exc:
        if exc.status == 415:
            raise Unsupported(exc.message) from None
        if exc.status == 409:
            raise Conflict(exc.message) from None
        raise BadRequest(exc.field, exc.message, where="body") from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return dataset_public(row)


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    session: ReadSessionDep,
    principal: SignedInDep,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DatasetsPublic:
    """The caller's datasets, newest first (an admin's: everyone's)."""
    rows, count = store.list_datasets(
        session=session, offset=offset, limit=limit, owner=owner_filter(principal)
    )
    return DatasetsPublic(data=[dataset_public(r) for r in rows], count=count)


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=NOT_FOUND)
def read_dataset(
    dataset_id: DatasetId, session: ReadSessionDep, principal: PrincipalDep
) -> DatasetPublic:
    row = store.get_dataset(session=session, dataset_id=dataset_id)
    return dataset_public(changeable(principal, row, f"dataset {dataset_id}"))


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorPublic, "description": "A study still needs the dataset"},
    },
)
def delete_dataset(dataset_id: DatasetId, session: SessionDep, principal: PrincipalDep) -> Response:
    """Delete a dataset no study needs any more (none queued or running, none waiting for
    its winner's test-set evaluation); its bytes go too unless another dataset shares them."""
    row = store.lock_dataset(session=session, dataset_id=dataset_id)
    row = changeable(principal, row, f"dataset {dataset_id}")
    using = store.studies_using(session=session, dataset_id=dataset_id)
    if using:
        studies = ", ".join(str(i) for i in using[:10])
        raise Conflict(
            f"dataset {dataset_id} is in use by study {studies} (queued, running or awaiting "
            "its test-set evaluation); cancel or wait for it"
        )
    store.delete_dataset(session=session, dataset=row)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


__all__ = ["dataset_public", "router"]
