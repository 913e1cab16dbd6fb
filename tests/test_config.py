"""Settings: the repository's config.toml, GATEWAY_* overrides, and errors that name the key.

Pure tests: ``load_settings(path, environ={...})`` never reads the real environment here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from gateway.config import ConfigError, Settings, SimRule, load_settings

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf setting of a settings model, as a path: ('telephony', 'sim', 'seed')."""
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += leaf_paths(annotation, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the repository's file and the built-in defaults -------------------------------------


def test_repository_config_equals_builtin_defaults():
    assert load_settings(REPO_CONFIG, environ={}) == Settings()


def test_every_setting_is_listed_in_repository_config():
    data = tomllib.loads(REPO_CONFIG.read_text(encoding="utf-8"))
    leaves = leaf_paths(Settings)
    assert ("telephony", "sim", "rules") in leaves and ("http", "port") in leaves
    missing = []
    for path in leaves:
        node = data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                missing.append(".".join(path))
                break
            node = node[part]
    assert missing == []


def test_no_file_means_builtin_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./config.toml here
    assert load_settings(None, environ={}) == Settings()


def test_config_toml_in_working_directory_is_read(tmp_path, monkeypatch):
    write(tmp_path, "[http]\nport = 8181\n", name="config.toml")
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, environ={}).http.port == 8181


# --- environment overrides -----------------------------------------------------------------


def test_env_overrides_port():
    settings = load_settings(REPO_CONFIG, environ={"GATEWAY_HTTP_PORT": "9000"})
    assert settings.http.port == 9000
    assert settings.http.host == "127.0.0.1"  # the rest stays as in the file


def test_env_overrides_nested_section():
    settings = load_settings(REPO_CONFIG, environ={"GATEWAY_TELEPHONY_SIM_SEED": "7"})
    assert settings.telephony.sim.seed == 7


def test_env_list_of_rules_is_read_as_toml():
    rules = ('[{ pattern = "+1555*", outcome = "busy", ring_seconds = 2, talk_seconds = 0 },'
             ' { pattern = "*", outcome = "answered", ring_seconds = 5, talk_seconds = 30 }]')
    settings = load_settings(REPO_CONFIG, environ={"GATEWAY_TELEPHONY_SIM_RULES": rules})
    assert settings.telephony.sim.rules == [
        SimRule(pattern="+1555*", outcome="busy", ring_seconds=2, talk_seconds=0),
        SimRule(pattern="*", outcome="answered", ring_seconds=5, talk_seconds=30),
    ]
    assert settings.telephony.sim.rules[0].matches("+15551234567")
    assert not settings.telephony.sim.rules[0].matches("+12025550143")


def test_text_settings_stay_text():
    settings = load_settings(REPO_CONFIG, environ={
        "GATEWAY_TELEPHONY_SIP_PASSWORD": "1234",
        "GATEWAY_TELEPHONY_SIP_USERNAME": "007",
        "GATEWAY_DATABASE_DATA_DIR": "1e3",
        "GATEWAY_HTTP_HOST": "true",
    })
    password = settings.telephony.sip.password
    assert isinstance(password, SecretStr) and password.get_secret_value() == "1234"
    assert settings.telephony.sip.username == "007"
    assert settings.database.data_dir == Path("1e3")
    assert settings.http.host == "true"


def test_env_beats_file(tmp_path):
    path = write(tmp_path, "[http]\nport = 8181\n\n[telephony.sim]\nseed = 3\n")
    settings = load_settings(path, environ={"GATEWAY_HTTP_PORT": "9001"})
    assert settings.http.port == 9001  # env wins
    assert settings.telephony.sim.seed == 3  # the file still counts where env is silent


def test_database_url_from_env():
    url = "postgresql://user:pw@db.example:5433/gw"
    settings = load_settings(REPO_CONFIG, environ={"GATEWAY_DATABASE_URL": url})
    assert settings.database.url == url


def test_unrelated_gateway_variables_are_ignored():
    settings = load_settings(REPO_CONFIG, environ={
        "GATEWAY_API_KEY": "gw_x",
        "GATEWAY_BASE_URL": "http://127.0.0.1:1",
        "GATEWAY_BOOTSTRAP_API_KEY": "gw_y",
        "GATEWAY_CONFIG": "",  # empty: not a file to read
        "GATEWAY_TEST_DATABASE_URL": "postgresql://elsewhere/postgres",  # not a section
        "HTTP_PORT": "1",
    })
    assert settings == Settings()


def test_gateway_config_env_selects_file(tmp_path):
    path = write(tmp_path, "[http]\nport = 8282\n")
    assert load_settings(None, environ={"GATEWAY_CONFIG": str(path)}).http.port == 8282


def test_explicit_path_beats_gateway_config(tmp_path):
    chosen = write(tmp_path, "[http]\nport = 8383\n", name="chosen.toml")
    other = write(tmp_path, "[http]\nport = 8484\n", name="other.toml")
    assert load_settings(chosen, environ={"GATEWAY_CONFIG": str(other)}).http.port == 8383


# --- errors name the key -------------------------------------------------------------------


def test_unknown_key_in_file(tmp_path):
    path = write(tmp_path, "[http]\nprot = 8080\n")
    with pytest.raises(ConfigError, match=r"http\.prot"):
        load_settings(path, environ={})


def test_unknown_section_in_file(tmp_path):
    path = write(tmp_path, "[htpp]\nport = 8080\n")
    with pytest.raises(ConfigError, match="htpp"):
        load_settings(path, environ={})


def test_unknown_env_variable():
    with pytest.raises(ConfigError, match="GATEWAY_HTTP_PROT"):
        load_settings(REPO_CONFIG, environ={"GATEWAY_HTTP_PROT": "9000"})


def test_unknown_nested_env_variable():
    with pytest.raises(ConfigError, match="GATEWAY_TELEPHONY_SIM_SEEDS"):
        load_settings(REPO_CONFIG, environ={"GATEWAY_TELEPHONY_SIM_SEEDS": "1"})


@pytest.mark.parametrize("variable, value, key", [
    ("GATEWAY_HTTP_PORT", "abc", "http.port"),
    ("GATEWAY_HTTP_PORT", "70000", "http.port"),
    ("GATEWAY_TELEPHONY_ADAPTER", "pots", "telephony.adapter"),
    ("GATEWAY_CONTACTS_DEFAULT_REGION", "XX", "contacts.default_region"),
    ("GATEWAY_TELEPHONY_SIM_RULES", '[{ pattern = "*", outcome = "maybe" }]',
     "telephony.sim.rules.0.outcome"),
    ("GATEWAY_LOG_LEVEL", "loud", "log.level"),
])
def test_invalid_env_value_names_key(variable, value, key):
    with pytest.raises(ConfigError) as exc:
        load_settings(REPO_CONFIG, environ={variable: value})
    assert key in str(exc.value)


@pytest.mark.parametrize("text, key", [
    ('[http]\nport = "abc"\n', "http.port"),
    ("[http]\nport = 70000\n", "http.port"),
    ('[telephony]\nadapter = "pots"\n', "telephony.adapter"),
    ('[contacts]\ndefault_region = "XX"\n', "contacts.default_region"),
    ('[telephony.sim]\nrules = [{ pattern = "*", outcome = "maybe" }]\n',
     "telephony.sim.rules.0.outcome"),
])
def test_invalid_file_value_names_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert key in str(exc.value)
    assert str(path) in str(exc.value)  # and the file it came from


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_settings(missing, environ={})


def test_missing_file_named_by_gateway_config(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_settings(None, environ={"GATEWAY_CONFIG": str(tmp_path / "nope.toml")})


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[http\nport = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, environ={})


def test_config_path_that_is_a_directory(tmp_path):
    # Not a raw IsADirectoryError (a traceback from the CLI): a ConfigError naming the path.
    with pytest.raises(ConfigError, match=str(tmp_path)):
        load_settings(tmp_path, environ={})


def test_password_not_in_repr():
    settings = load_settings(REPO_CONFIG,
                             environ={"GATEWAY_TELEPHONY_SIP_PASSWORD": "s3cr3t-pa55"})
    assert settings.telephony.sip.password.get_secret_value() == "s3cr3t-pa55"
    assert "s3cr3t-pa55" not in repr(settings)
    assert "s3cr3t-pa55" not in str(settings)
