"""Travel: employees' business trips, each checked with HR (deptmesh.travel.v1.TripService).

The smallest department that is both a server and a client on the mesh, and
the model `README.md` ("Adding a department") walks through.
"""
