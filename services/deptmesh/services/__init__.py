"""The departments of the demo company, each a real service on the deptmesh sidecar.

hr, finance, reimbursement and travel are each a `Department` (their app.py),
run by the sidecar's host with `python -m deptmesh.services.<name>`; demo.py
drives one expense claim through the first three. intentions.py and
quota_tiers.py are the company's policy for all of them.
"""
