"""Settings come from defaults, a TOML file and the environment, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import ConfigError, load_settings


def test_defaults_need_no_configuration() -> None:
    """With nothing set, the defaults of SPEC section 4 apply."""
    settings = load_settings(environ={})
    assert settings.database == "./spotsync.db"
    assert settings.listen_port == 8080
    assert settings.rate_limit == 10.0
    assert settings.reconcile_interval == 60.0
    assert settings.reconcile_stale_after == 900.0
    assert settings.reconcile_batch == 50


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    """A TOML key in lower case without prefix is overridden by its environment variable."""
    config = tmp_path / "spotsync.toml"
    config.write_text('rate_limit = 4\nreconcile_stale_after = "2m"\nlisten = "0.0.0.0:9000"\n')
    settings = load_settings(config, environ={"SPOTSYNC_RATE_LIMIT": "7"})
    assert settings.rate_limit == 7.0
    assert settings.reconcile_stale_after == 120.0
    assert settings.listen_port == 9000


def test_bad_value_names_the_variable() -> None:
    """A malformed value is refused with the variable's name in the message."""
    with pytest.raises(ConfigError, match="SPOTSYNC_RECONCILE_INTERVAL"):
        load_settings(environ={"SPOTSYNC_RECONCILE_INTERVAL": "soon"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SPOTSYNC_LISTEN": "127.0.0.1:99999"}, "SPOTSYNC_LISTEN: port 99999 is not from 0"),
        ({"SPOTDRAFT_HMAC_KEY": "not base64!!"}, "SPOTDRAFT_HMAC_KEY: not valid base64"),
        ({"SPOTDRAFT_HMAC_KEY": " "}, "SPOTDRAFT_HMAC_KEY: must not be empty"),
        ({"SPOTSYNC_API_TOKEN": "   "}, "SPOTSYNC_API_TOKEN: must not be blank"),
        ({"SPOTDRAFT_CLIENT_SECRET": " "}, "SPOTDRAFT_CLIENT_SECRET: must not be blank"),
        ({"SPOTSYNC_SINK_SECRET": "whsec_not base64!!"}, "SPOTSYNC_SINK_SECRET: after whsec_"),
        ({"SPOTSYNC_SINK_SECRET": "whsec_"}, "SPOTSYNC_SINK_SECRET: after whsec_"),
        ({"SPOTSYNC_RATE_LIMIT": "nan"}, "SPOTSYNC_RATE_LIMIT: must be a positive"),
        ({"SPOTSYNC_RATE_LIMIT": "inf"}, "SPOTSYNC_RATE_LIMIT: must be a positive"),
        ({"SPOTSYNC_RECONCILE_INTERVAL": "0"}, "SPOTSYNC_RECONCILE_INTERVAL: must be a positive"),
        ({"SPOTDRAFT_BASE_URL": "notaurl"}, "SPOTDRAFT_BASE_URL: not an http(s) URL"),
        (
            {"SPOTSYNC_DATABASE": "mysql://x:not base64!!@h/x"},
            "SPOTSYNC_DATABASE: a SQLite file path or a postgresql:// URL, not mysql://",
        ),
    ],
)
def test_values_the_daemon_cannot_start_with_are_refused_by_name(
    environ: dict[str, str], message: str
) -> None:
    """A value the daemon cannot run with is a one-line error naming the variable (and
    never echoing a secret) rather than a failure deep in start-up or a daemon that
    accepts any webhook signature (an empty key) or spins (an interval of zero)."""
    with pytest.raises(ConfigError) as error:
        load_settings(environ=environ)
    assert str(error.value).startswith(message)
    assert "not base64!!" not in str(error.value)


def test_secrets_stay_out_of_repr() -> None:
    """Printing the settings never shows a secret."""
    settings = load_settings(
        environ={"SPOTDRAFT_CLIENT_SECRET": "s3cr3t-value", "SPOTSYNC_API_TOKEN": "tok-value"}
    )
    assert "s3cr3t-value" not in repr(settings)
    assert "tok-value" not in repr(settings)


def test_spotdraft_timeout_is_a_duration() -> None:
    """SPOTDRAFT_TIMEOUT takes a duration and refuses zero."""
    assert load_settings(environ={"SPOTDRAFT_TIMEOUT": "5s"}).spotdraft_timeout == 5.0
    with pytest.raises(ConfigError, match="SPOTDRAFT_TIMEOUT"):
        load_settings(environ={"SPOTDRAFT_TIMEOUT": "0s"})


def test_a_flag_in_the_file_is_no_number(tmp_path: Path) -> None:
    config = tmp_path / "spotsync.toml"
    config.write_text("reconcile_batch = true\n")
    with pytest.raises(ConfigError, match="SPOTSYNC_RECONCILE_BATCH: expected a number"):
        load_settings(config, environ={})


def test_an_ipv6_listen_address_is_written_in_brackets() -> None:
    settings = load_settings(environ={"SPOTSYNC_LISTEN": "[::1]:8443"})
    assert (settings.listen_host, settings.listen_port) == ("::1", 8443)


def test_the_file_names_each_variable_without_its_prefix(tmp_path: Path) -> None:
    """SPOTDRAFT_TIMEOUT is ``timeout`` in the file, as SPOTDRAFT_BASE_URL is ``base_url``."""
    config = tmp_path / "spotsync.toml"
    config.write_text('timeout = "5s"\nbase_url = "https://api.us.spotdraft.com"\n')
    settings = load_settings(config, environ={})
    assert (settings.spotdraft_timeout, settings.base_url) == (5.0, "https://api.us.spotdraft.com")
