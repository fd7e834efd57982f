"""deptmesh.sidecar.errors: the error tree and the google.rpc.Status each error becomes."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

import deptmesh.sidecar.errors
from deptmesh.sidecar.errors import (
    ERROR_DOMAIN,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceError,
    Unavailable,
)


class TestServiceError:
    @pytest.mark.parametrize(
        ("error_type", "code"),
        [
            (ServiceError, grpc.StatusCode.INTERNAL),
            (NotFound, grpc.StatusCode.NOT_FOUND),
            (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
            (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
            (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
            (Unavailable, grpc.StatusCode.UNAVAILABLE),
        ],
    )
    def test_status_code(self, error_type, code):
        """Each error type carries its own status code into its status proto."""
        error = error_type("something went wrong")

        assert error.status_code is code
        assert isinstance(error, ServiceError)
        status = error.to_status_proto()
        assert status.code == code.value[0]
        assert status.message == "something went wrong"

    def test_invalid_argument_code(self):
        """InvalidArgument is INVALID_ARGUMENT."""
        error = InvalidArgument([FieldViolation("a", "required")])

        assert error.status_code is grpc.StatusCode.INVALID_ARGUMENT
        assert error.to_status_proto().code == grpc.StatusCode.INVALID_ARGUMENT.value[0]

    def test_no_reason_no_details(self):
        """An error without a reason has no details."""
        assert list(NotFound("employee E9 not found").to_status_proto().details) == []

    def test_reason_packs_error_info(self):
        """An error with a reason packs one ErrorInfo with our domain and its metadata."""
        error = FailedPrecondition(
            "claim is already paid", reason="CLAIM_PAID", metadata={"claim_id": "C1"}
        )

        details = list(error.to_status_proto().details)

        assert len(details) == 1
        assert details[0].Is(error_details_pb2.ErrorInfo.DESCRIPTOR)
        info = error_details_pb2.ErrorInfo()
        details[0].Unpack(info)
        assert info.reason == "CLAIM_PAID"
        assert info.domain == ERROR_DOMAIN == "deptmesh"
        assert dict(info.metadata) == {"claim_id": "C1"}

    def test_metadata_is_copied(self):
        """Changing the mapping passed in does not change the error."""
        metadata = {"k": "v"}
        error = PermissionDenied("no", reason="DENIED", metadata=metadata)
        metadata["k"] = "changed"

        assert error.metadata == {"k": "v"}

    def test_invalid_argument_packs_bad_request(self):
        """InvalidArgument packs one BadRequest naming every field, in order."""
        error = InvalidArgument(
            [FieldViolation("employee_id", "required"), FieldViolation("amount.nanos", "too big")]
        )

        status = error.to_status_proto()

        assert status.message == "invalid request: employee_id, amount.nanos"
        assert len(status.details) == 1
        assert status.details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)
        bad_request = error_details_pb2.BadRequest()
        status.details[0].Unpack(bad_request)
        assert [(v.field, v.description) for v in bad_request.field_violations] == [
            ("employee_id", "required"),
            ("amount.nanos", "too big"),
        ]

    def test_exported_members(self):
        """__all__ names exactly the public error types, and each exists."""
        public = {
            name
            for name, value in vars(deptmesh.sidecar.errors).items()
            if not name.startswith("_")
            and isinstance(value, type)
            and value.__module__ == "deptmesh.sidecar.errors"
        }

        assert set(deptmesh.sidecar.errors.__all__) == public
