"""The departments of the demo company, each a real service on the deptmesh sidecar.

hr, finance and reimbursement run with `python -m deptmesh.services.<name>`;
demo.py drives one expense claim through all three.
"""
