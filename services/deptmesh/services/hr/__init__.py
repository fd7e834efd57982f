"""HR: employees, who reports to whom, and cost centres (deptmesh.hr.v1.EmployeeService)."""
