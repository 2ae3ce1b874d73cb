"""Settings come from the environment through typed readers that fail loudly (STYLE.md)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from marketerapi.env import ImproperSetting, env_bool, env_choice, env_int, env_list, env_str, env_url
from tests.processes import ROOT, clean_env, manage

# --- the readers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), (" on ", True), ("0", False), ("false", False), ("off", False)],
)
def test_env_bool_reads_the_usual_spellings(raw, expected):
    assert env_bool("FLAG", not expected, environ={"FLAG": raw}) is expected


def test_env_bool_unset_gives_the_default():
    assert env_bool("FLAG", True, environ={}) is True


def test_env_bool_rejects_anything_else_naming_variable_value_and_choices():
    with pytest.raises(ImproperSetting) as excinfo:
        env_bool("DEBUG", False, environ={"DEBUG": "maybe"})
    message = str(excinfo.value)
    assert "DEBUG='maybe'" in message
    assert "not a boolean" in message
    assert "1/0" in message and "true/false" in message


def test_env_int_reads_a_number_and_empty_means_default():
    assert env_int("N", 5, environ={"N": " 42 "}) == 42
    assert env_int("N", 5, environ={"N": ""}) == 5


@pytest.mark.parametrize("raw", ["ten", "1.5", "600s"])
def test_env_int_rejects_what_is_not_a_whole_number(raw):
    with pytest.raises(ImproperSetting, match=r"CONN_MAX_AGE=.* is not a whole number"):
        env_int("CONN_MAX_AGE", 600, environ={"CONN_MAX_AGE": raw})


def test_env_int_enforces_its_bounds():
    with pytest.raises(ImproperSetting, match="CONN_MAX_AGE=-1 is below the minimum of 0"):
        env_int("CONN_MAX_AGE", 600, minimum=0, environ={"CONN_MAX_AGE": "-1"})
    with pytest.raises(ImproperSetting, match="N=11 is above the maximum of 10"):
        env_int("N", 1, maximum=10, environ={"N": "11"})


def test_env_url_accepts_its_schemes_and_rejects_others_listing_them():
    assert env_url("DATABASE_URL", "", schemes=("postgres",), environ={"DATABASE_URL": "postgres://h/db"}) == (
        "postgres://h/db"
    )
    with pytest.raises(ImproperSetting) as excinfo:
        env_url("DATABASE_URL", "", schemes=("sqlite", "postgres"), environ={"DATABASE_URL": "mysql://h/db"})
    assert str(excinfo.value) == (
        "DATABASE_URL='mysql://h/db' has scheme 'mysql'; expected one of sqlite://, postgres://."
    )


def test_env_url_without_a_scheme_says_so():
    with pytest.raises(ImproperSetting, match="has scheme 'none'"):
        env_url("REDIS_URL", "", schemes=("redis",), environ={"REDIS_URL": "127.0.0.1:6379"})


def test_env_choice_lists_the_choices():
    with pytest.raises(ImproperSetting, match="LOG_LEVEL='LOUD' is not one of: DEBUG, INFO"):
        env_choice("LOG_LEVEL", "INFO", choices=("DEBUG", "INFO"), environ={"LOG_LEVEL": "LOUD"})


def test_env_list_and_str():
    assert env_list("HOSTS", ["x"], environ={"HOSTS": "a.example, b.example ,,"}) == ["a.example", "b.example"]
    assert env_list("HOSTS", ["x"], environ={}) == ["x"]
    assert env_str("NAME", "d", environ={}) == "d"


# --- a bad value stops the process at start -----------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "mysql://db.example/marketerapi", "DATABASE_URL='mysql://db.example/marketerapi' has scheme"),
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("CONN_MAX_AGE", "forever", "CONN_MAX_AGE='forever' is not a whole number"),
        ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL='http://127.0.0.1:6379' has scheme 'http'"),
    ],
)
@pytest.mark.slow
def test_a_bad_value_stops_manage_py_with_the_message(variable, value, message):
    # given a development environment with one bad value
    env = clean_env(**{"DEBUG": "1", variable: value})

    # when anything imports the settings
    result = manage("check", env=env)

    # then the process exits non-zero and says what is wrong
    assert result.returncode != 0
    assert "ImproperSetting" in result.stderr
    assert message in result.stderr


@pytest.mark.slow
def test_settings_import_fails_with_the_message_for_a_bad_database_url():
    env = clean_env(DEBUG="1", DATABASE_URL="oracle://db/x", DJANGO_SETTINGS_MODULE="marketerapi.settings")
    result = subprocess.run(
        [sys.executable, "-c", "import marketerapi.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "DATABASE_URL='oracle://db/x' has scheme 'oracle'; expected one of sqlite://" in result.stderr


def test_without_a_broker_the_in_process_jobs_log_no_kombu_warning_nor_task_traces():
    """Issue 11: a cold `make run` without Redis logged kombu's "No hostname was supplied"
    and a Celery trace line per task."""
    from marketerapi import settings as project_settings

    if not project_settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.skip("a broker is configured: its warnings are worth seeing")
    loggers = project_settings.LOGGING["loggers"]
    assert logging.getLevelName(loggers["kombu.connection"]["level"]) > logging.WARNING
    assert logging.getLevelName(loggers["celery.app.trace"]["level"]) > logging.INFO
