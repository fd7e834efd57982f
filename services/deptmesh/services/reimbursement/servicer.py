"""deptmesh.reimbursement.v1.ReimbursementService: validation and messages over ClaimWorkflow."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.reimbursement.v1 import reimbursement_pb2 as pb
from deptmesh.reimbursement.v1 import reimbursement_pb2_grpc
from deptmesh.services.money import Amount, check_money
from deptmesh.services.pagination import close_page, read_page
from deptmesh.services.reimbursement.store import Claim, ClaimState, ClaimStore, NewClaim
from deptmesh.services.reimbursement.workflow import ClaimWorkflow
from deptmesh.services.validation import FieldViolations, require_identifier
from deptmesh.sidecar.caller import current_caller

_STATES = {state: pb.ClaimState.Value(f"CLAIM_STATE_{state}") for state in ClaimState}
_STATES_BY_NUMBER = {number: state for state, number in _STATES.items()}


def _timestamp(nanos: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(nanos)
    return stamp


def claim_proto(claim: Claim) -> pb.Claim:
    return pb.Claim(
        claim_id=claim.claim_id,
        employee_id=claim.employee_id,
        amount=claim.amount.to_proto(),
        description=claim.description,
        state=_STATES[claim.state],
        decided_by=claim.decided_by,
        rejection_reason=claim.rejection_reason,
        reservation_id=claim.reservation_id,
        payout_id=claim.payout_id,
        create_time=_timestamp(claim.create_time_ns),
        update_time=_timestamp(claim.update_time_ns),
    )


class ReimbursementServicer(reimbursement_pb2_grpc.ReimbursementServiceServicer):
    def __init__(self, store: ClaimStore, workflow: ClaimWorkflow) -> None:
        self._store = store
        self._workflow = workflow

    def SubmitClaim(
        self, request: pb.SubmitClaimRequest, context: grpc.ServicerContext
    ) -> pb.SubmitClaimResponse:
        violations = FieldViolations()
        violations.identifier("employee_id", request.employee_id)
        check_money(violations, "amount", request.amount, present=request.HasField("amount"))
        violations.text("description", request.description, max_length=500)
        violations.key("request_id", request.request_id, required=False)
        violations.raise_if_any()
        new_claim = NewClaim(
            request.employee_id, Amount.from_proto(request.amount), request.description
        )
        claim = self._workflow.submit(current_caller().service, request.request_id, new_claim)
        return pb.SubmitClaimResponse(claim=claim_proto(claim))

    def GetClaim(
        self, request: pb.GetClaimRequest, context: grpc.ServicerContext
    ) -> pb.GetClaimResponse:
        require_identifier("claim_id", request.claim_id)
        return pb.GetClaimResponse(claim=claim_proto(self._store.get(request.claim_id)))

    def ListClaims(
        self, request: pb.ListClaimsRequest, context: grpc.ServicerContext
    ) -> pb.ListClaimsResponse:
        violations = FieldViolations()
        violations.identifier("employee_id", request.employee_id, required=False)
        state = _STATES_BY_NUMBER.get(request.state)
        if request.state and state is None:
            violations.add("state", f"unknown claim state {request.state}")
        filter_key = f"{request.employee_id}\0{request.state}"
        page = read_page(violations, request.page_size, request.page_token, filter_key)
        violations.raise_if_any()
        claims, token = close_page(
            self._store.page(page, request.employee_id, state),
            page,
            filter_key,
            key=lambda claim: claim.seq,
        )
        return pb.ListClaimsResponse(claims=[claim_proto(c) for c in claims], next_page_token=token)

    def ApproveClaim(
        self, request: pb.ApproveClaimRequest, context: grpc.ServicerContext
    ) -> pb.ApproveClaimResponse:
        violations = FieldViolations()
        violations.identifier("claim_id", request.claim_id)
        violations.identifier("approver_id", request.approver_id)
        violations.raise_if_any()
        claim = self._workflow.approve(request.claim_id, request.approver_id)
        return pb.ApproveClaimResponse(claim=claim_proto(claim))

    def RejectClaim(
        self, request: pb.RejectClaimRequest, context: grpc.ServicerContext
    ) -> pb.RejectClaimResponse:
        violations = FieldViolations()
        violations.identifier("claim_id", request.claim_id)
        violations.identifier("approver_id", request.approver_id)
        violations.text("reason", request.reason, max_length=500)
        violations.raise_if_any()
        claim = self._workflow.reject(request.claim_id, request.approver_id, request.reason)
        return pb.RejectClaimResponse(claim=claim_proto(claim))
