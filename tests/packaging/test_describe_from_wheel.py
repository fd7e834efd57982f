"""`deptmesh describe` from the wheel: the .proto sources ship beside the generated modules,
so the comments and status codes are there outside a clone too."""

from __future__ import annotations


class TestDescribeFromTheWheel:
    def test_the_wheel_ships_the_proto_sources(self, installation):
        """hr.proto sits next to hr_pb2.py in site-packages."""
        folder = installation.site_packages / "deptmesh" / "hr" / "v1"
        assert (folder / "hr.proto").is_file()
        assert (folder / "hr_pb2.py").is_file()

    def test_describe_shows_comments_and_status_codes(self, installation):
        """A method's field comments and declared error cases, from the installed files."""
        finished = installation.venv.run("deptmesh", "describe", "hr/GetEmployee")
        assert finished.returncode == 0, finished.stderr
        assert "Required. The employee to return." in finished.stdout
        assert "  NOT_FOUND\n    when: No employee has that id.\n" in finished.stdout
