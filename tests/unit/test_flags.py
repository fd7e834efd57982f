"""HOST:PORT flags are checked while the command line is parsed, and refused in one line."""

from __future__ import annotations

import argparse

import pytest

from deptmesh.sidecar.flags import OneLineParser, host_port


class TestHostPort:
    @pytest.mark.parametrize(
        ("value", "address"),
        [
            ("127.0.0.1:8500", "127.0.0.1:8500"),
            ("http://consul.internal:8500", "consul.internal:8500"),
            ("[::1]:8500", "[::1]:8500"),
            (" localhost:08500 ", "localhost:8500"),
        ],
    )
    def test_accepts_host_port(self, value, address):
        """A host name, IPv4 or bracketed IPv6 address and a port in range is HOST:PORT."""
        assert host_port(value) == address

    @pytest.mark.parametrize(
        "value", ["garbage", "127.0.0.1", ":8500", "host:", "host:0", "host:65536", "a b:1", "h:٣"]
    )
    def test_refuses_anything_else(self, value):
        """No colon, no host, no port, a port out of range or not ASCII digits is refused."""
        with pytest.raises(argparse.ArgumentTypeError, match=r"127\.0\.0\.1:8500"):
            host_port(value)


class TestOneLineParser:
    def test_a_bad_flag_is_one_line_naming_it(self, capsys):
        """The error names the flag and the value, in one line, with exit status 2."""
        parser = OneLineParser(prog="deptmesh quota")
        parser.add_argument("--consul-address", type=host_port)
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["--consul-address", "garbage"])
        assert exited.value.code == 2
        assert capsys.readouterr().err == (
            "deptmesh quota: argument --consul-address: 'garbage' is not HOST:PORT"
            " (for example 127.0.0.1:8500) (--help lists the flags)\n"
        )
