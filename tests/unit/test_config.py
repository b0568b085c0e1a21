from __future__ import annotations

from pathlib import Path

import pytest

from restengine import create_app
from restengine.config import DEMO_MODULE, ConfigError, Settings, load_settings, require_secret, setting_specs
from restengine.ops.settings import StackSettings, load_stack_settings
from restengine.ops.stack import local_secret
from tests.keys import TEST_SECRET

# What only the `restengine` command and its stack read; a worker never sees these.
STACK_ONLY = frozenset(
    {
        "RESTENGINE_DATA_DIR",
        "RESTENGINE_REDIS_PORT",
        "RESTENGINE_HTTP_PORT",
        "RESTENGINE_INSTANCE_PORTS",
        "RESTENGINE_SEED_BOOKS",
    }
)


def test_defaults_without_environment() -> None:
    settings = load_settings(environ={})
    assert settings.mongodb_uri is None
    assert settings.redis_url is None
    assert settings.documents == () and settings.document_modules() == (DEMO_MODULE,)
    assert settings.threads == 8 and settings.max_pool_size == 10
    assert settings.db_timeout_ms <= 2000, "the default 503 budget is at most 2 s"
    stack = load_stack_settings(environ={})
    assert stack.data_dir == Path("var")
    assert (stack.redis_port, stack.http_port, stack.instance_ports, stack.seed_books) == (
        6379,
        8080,
        (8001, 8002),
        10_000,
    )
    assert stack.threads == 8 and stack.document_modules() == (DEMO_MODULE,), "the stack has the workers' settings too"


def test_the_worker_settings_hold_nothing_only_the_stack_needs() -> None:
    worker = {spec.key for spec in setting_specs()}
    stack = {spec.key for spec in setting_specs(StackSettings)}
    assert worker & STACK_ONLY == set()
    assert stack == worker | STACK_ONLY
    assert issubclass(StackSettings, Settings)
    # A worker is not refused over a setting only the stack reads.
    assert load_settings(environ={"RESTENGINE_HTTP_PORT": "70000"}).threads == 8


def test_stack_environment_then_overrides_win() -> None:
    environ = {
        "RESTENGINE_DATA_DIR": "~/re",
        "RESTENGINE_INSTANCE_PORTS": " 9001, 9002 ,9003",
        "RESTENGINE_THREADS": "3",
    }
    stack = load_stack_settings({"RESTENGINE_SEED_BOOKS": 5}, environ=environ)
    assert stack.data_dir == Path("~/re").expanduser()
    assert stack.instance_ports == (9001, 9002, 9003)
    assert stack.seed_books == 5 and stack.threads == 3


def test_environment_then_overrides_win() -> None:
    environ = {
        "RESTENGINE_THREADS": "4",
        "MONGODB_URI": "mongodb://db.example:27017/shop",
        "REDIS_URL": "redis://r:6379/1",
    }
    settings = load_settings({"RESTENGINE_THREADS": 16}, environ=environ)
    assert settings.threads == 16
    assert settings.mongodb_uri == "mongodb://db.example:27017/shop"
    assert settings.redis_url == "redis://r:6379/1"


def test_documents_are_a_comma_separated_list() -> None:
    settings = load_settings(environ={"RESTENGINE_DOCUMENTS": " app.models , legacy.docs ,"})
    assert settings.documents == ("app.models", "legacy.docs")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("RESTENGINE_THREADS", "many"),
        ("RESTENGINE_THREADS", "0"),
        ("RESTENGINE_DB_TIMEOUT_MS", "-5"),
        ("RESTENGINE_HTTP_PORT", "70000"),
        ("RESTENGINE_INSTANCE_PORTS", ""),
        ("MONGODB_URI", "postgres://x"),
        ("MONGODB_URI", "mongodb://host:notaport/db"),
        ("REDIS_URL", "http://localhost:6379"),
        ("RESTENGINE_POOL_MAX", "2"),
    ],
)
def test_invalid_setting_is_refused_with_a_one_line_reason_naming_it(key: str, value: str) -> None:
    # The worker refuses its own settings; the command (the stack) refuses every one, with the same reason.
    loaders = [load_stack_settings] if key in STACK_ONLY else [load_settings, load_stack_settings]
    for load in loaders:
        with pytest.raises(ConfigError) as info:
            load(environ={key: value})
        message = str(info.value)
        assert message.startswith(key)
        assert "\n" not in message


def test_pool_is_never_smaller_than_the_threads() -> None:
    assert load_settings(environ={"RESTENGINE_THREADS": "32"}).max_pool_size >= 32
    assert load_settings(environ={"RESTENGINE_THREADS": "4", "RESTENGINE_POOL_MAX": "4"}).max_pool_size == 4


def test_flask_mongoengine_settings_dict() -> None:
    config = {
        "MONGODB_SETTINGS": {
            "db": "legacy",
            "host": "mongo.internal",
            "port": 27018,
            "username": "u",
            "password": "p@ss",
        }
    }
    assert load_settings(config, environ={}).mongodb_uri == "mongodb://u:p%40ss@mongo.internal:27018/legacy"


def test_flask_mongoengine_settings_list_uses_the_default_alias() -> None:
    config = {
        "MONGODB_SETTINGS": [{"alias": "other", "host": "x"}, {"host": "mongodb://h1,h2/?replicaSet=rs", "db": "app"}]
    }
    assert load_settings(config, environ={}).mongodb_uri == "mongodb://h1,h2/app?replicaSet=rs"


def test_flask_mongoengine_flat_keys() -> None:
    config = {"MONGODB_HOST": "db1", "MONGODB_PORT": "27019", "MONGODB_DB": "shop"}
    assert load_settings(flask_config=config, environ={}).mongodb_uri == "mongodb://db1:27019/shop"


def test_environment_uri_wins_over_a_legacy_flask_config() -> None:
    settings = load_settings(flask_config={"MONGODB_DB": "old"}, environ={"MONGODB_URI": "mongodb://new/db"})
    assert settings.mongodb_uri == "mongodb://new/db"


def test_every_setting_is_documented_in_the_readme(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    specs = [*setting_specs(), *setting_specs(StackSettings)]
    missing = [spec.key for spec in specs if f"`{spec.key}`" not in readme]
    assert not missing, f"README configuration table lacks {missing}"


# The secret key: at least 32 bytes, or nothing starts


@pytest.mark.parametrize("short", ["x", "s" * 31, "é" * 15], ids=["one byte", "31 bytes", "15 two-byte characters"])
def test_a_short_secret_key_is_refused_in_one_line_naming_it(short: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"RESTENGINE_SECRET_KEY": short})
    message = str(raised.value)
    assert message.startswith("RESTENGINE_SECRET_KEY: must be at least 32 bytes") and "\n" not in message
    assert repr(short) not in message and (len(short) == 1 or short not in message), "the secret is never echoed"
    with pytest.raises(ConfigError, match="RESTENGINE_SECRET_KEY"):
        require_secret(Settings(secret_key=short))  # settings built without load_settings
    with pytest.raises(ConfigError, match="RESTENGINE_SECRET_KEY"):
        create_app({"RESTENGINE_SECRET_KEY": short})


def test_a_secret_key_of_32_bytes_is_accepted() -> None:
    for secret in ("s" * 32, "é" * 16, TEST_SECRET):
        assert require_secret(load_settings(environ={"RESTENGINE_SECRET_KEY": secret})) == secret
    assert load_settings(environ={}).secret_key is None, "unset is not refused here: serve/up make one"


def test_the_local_secret_is_long_enough_and_a_short_stored_one_is_refused(tmp_path: Path) -> None:
    settings = load_stack_settings({"RESTENGINE_DATA_DIR": str(tmp_path)}, environ={})
    made = local_secret(settings).secret_key
    assert made is not None and len(made.encode()) >= 32
    assert local_secret(settings).secret_key == made, "kept and reused"
    (tmp_path / "secret_key").write_text("short\n")
    with pytest.raises(ConfigError, match="secret_key: must be at least 32 bytes"):
        local_secret(settings)


def test_api_refuses_a_short_secret_when_it_is_built() -> None:
    from restengine.api import Api

    with pytest.raises(ConfigError, match="secret_key: must be at least 32 bytes"):
        Api(secret_key="s" * 31)
    assert Api(secret_key="s" * 32).secret() == b"s" * 32
