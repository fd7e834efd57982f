"""Which Consul token a process presents, and that the token never shows where it should not."""

from __future__ import annotations

import pytest

from deptmesh.registry.acl import Token, department_rules
from deptmesh.registry.credentials import consul_token
from deptmesh.services.hr.app import HR
from deptmesh.sidecar.host import parse_options


class TestConsulToken:
    def test_an_explicit_token_beats_everything(self, tmp_path):
        """The token argument wins over a token file and both environment variables."""
        file = tmp_path / "t"
        file.write_text("from-file\n")
        environ = {"CONSUL_HTTP_TOKEN_FILE": str(file), "CONSUL_HTTP_TOKEN": "from-env"}
        assert consul_token("explicit", file, environ) == "explicit"

    def test_an_explicit_file_beats_the_environment(self, tmp_path):
        """A token file given explicitly wins over both environment variables."""
        mine, other = tmp_path / "mine", tmp_path / "other"
        mine.write_text("  mine\n")
        other.write_text("other")
        environ = {"CONSUL_HTTP_TOKEN_FILE": str(other), "CONSUL_HTTP_TOKEN": "from-env"}
        assert consul_token(None, mine, environ) == "mine"

    def test_the_environments_file_beats_its_token(self, tmp_path):
        """$CONSUL_HTTP_TOKEN_FILE wins over $CONSUL_HTTP_TOKEN, as in Consul's own client."""
        file = tmp_path / "t"
        file.write_text("from-file")
        environ = {"CONSUL_HTTP_TOKEN_FILE": str(file), "CONSUL_HTTP_TOKEN": "from-env"}
        assert consul_token(None, None, environ) == "from-file"
        assert consul_token(None, None, {"CONSUL_HTTP_TOKEN": "from-env"}) == "from-env"

    def test_nothing_anywhere_is_anonymous(self):
        """No token anywhere (or an empty one) means no token at all."""
        assert consul_token(None, None, {}) is None
        assert consul_token("", None, {"CONSUL_HTTP_TOKEN": "x"}) is None

    @pytest.mark.parametrize(
        ("content", "says"),
        [
            (b"", "does not hold one token"),
            (b"\n  \n", "does not hold one token"),
            (b"secret-one secret-two\n", "holds more than one word"),
            (b"\xff\xfesecret", "does not hold one token"),
            (b"s" * 5000, "does not hold one token"),
        ],
    )
    def test_a_bad_token_file_is_named_and_never_quoted(self, tmp_path, content, says):
        """A token file that does not hold exactly one token: ValueError naming the file,
        without its content."""
        file = tmp_path / "t"
        file.write_bytes(content)
        with pytest.raises(ValueError, match=says) as caught:
            consul_token(None, file, {})
        assert str(file) in str(caught.value)
        assert "secret" not in str(caught.value)
        assert "sss" not in str(caught.value)

    def test_a_missing_file_from_the_environment_says_where_it_came_from(self, tmp_path):
        """$CONSUL_HTTP_TOKEN_FILE naming no file: the error says the variable named it."""
        missing = tmp_path / "missing"
        with pytest.raises(ValueError, match=r"from \$CONSUL_HTTP_TOKEN_FILE\) cannot be read"):
            consul_token(None, None, {"CONSUL_HTTP_TOKEN_FILE": str(missing)})


class TestToken:
    def test_the_secret_is_not_in_the_repr(self):
        """A Token's repr shows its accessor id and description, never its secret."""
        token = Token("accessor-1", "secret-1", "deptmesh department hr")
        assert "secret-1" not in repr(token)
        assert "accessor-1" in repr(token)

    def test_written_for_its_owner_only(self, tmp_path):
        """write_file leaves the secret in a file only its owner can read."""
        path = tmp_path / "hr.token"
        path.write_text("old")
        path.chmod(0o644)
        Token("accessor-1", "secret-1").write_file(path)
        assert path.read_text() == "secret-1\n"
        assert path.stat().st_mode & 0o777 == 0o600


class TestDepartmentRules:
    def test_a_department_reads_policy_and_writes_its_own_usage(self):
        """The rules a department's token gets beyond its service identity."""
        assert department_rules("hr") == (
            'key_prefix "deptmesh/policy/" {\n  policy = "read"\n}\n'
            'key_prefix "deptmesh/usage/hr/" {\n  policy = "write"\n}\n'
        )

    @pytest.mark.parametrize("name", ["", "HR", 'hr" { policy = "write" } #', "hr/x", "-hr"])
    def test_a_name_that_is_not_a_service_name_is_refused(self, name):
        """No name that could reach into a rule's syntax becomes a rule."""
        with pytest.raises(ValueError, match="lower-case"):
            department_rules(name)


class TestTokenFlag:
    def test_the_token_file_is_an_option_and_the_token_is_not(self, tmp_path):
        """--consul-token-file is parsed into a path; no option holds a token."""
        options = parse_options(
            HR,
            [
                *("--db", str(tmp_path / "hr.db"), "--consul-address", "127.0.0.1:8500"),
                *("--consul-token-file", str(tmp_path / "hr.token")),
            ],
        )
        assert options.consul_token_file == tmp_path / "hr.token"

    def test_a_token_file_without_consul_is_a_usage_error(self, tmp_path, capsys, monkeypatch):
        """--consul-token-file without --consul-address exits 2 saying what is missing."""
        monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
        with pytest.raises(SystemExit) as exited:
            parse_options(
                HR, ["--db", str(tmp_path / "hr.db"), "--consul-token-file", str(tmp_path / "t")]
            )
        assert exited.value.code == 2
        assert "--consul-token-file is for Consul" in capsys.readouterr().err
