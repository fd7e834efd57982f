"""Reimbursement: expense claims, approved by the manager and paid by finance."""
