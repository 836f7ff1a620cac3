import pytest

from gateway import config


def write(tmp_path, text):
    p = tmp_path / "gw.toml"
    p.write_text(text)
    return p


def test_defaults_without_file():
    cfg = config.load(None, env={})
    assert cfg.mqtt.session_expiry_s >= 3600 and cfg.mqtt.prefix == "wardwatch/v1"


@pytest.mark.parametrize(
    "text,key,line",
    [
        ('[mqtt]\nhost = "h"\nport = "x"\n', "mqtt.port", 3),
        ('[mqtt]\nport = 70000\n', "mqtt.port", 2),
        ('state_dir = "/x"\n\n[influx]\nbatch_size = 0\n', "influx.batch_size", 4),
        ('[mqtt]\nprot = 1\n', "mqtt.prot", 2),
        ('[mqtt]\nsession_expiry_s = 60\n', "mqtt.session_expiry_s", 2),
        ('[log]\nlevel = "loud"\n', "log.level", 2),
        ('[mqtt]\nwards = ["W1"]\n', "mqtt.wards", 2),
        ('[nope]\nx = 1\n', "nope", 1),
    ],
)
def test_errors_name_key_and_line(tmp_path, text, key, line):
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as info:
        config.load(path, env={})
    msg = str(info.value)
    assert f"{path}:{line}:" in msg and key in msg


def test_toml_syntax_error_names_line(tmp_path):
    with pytest.raises(config.ConfigError, match=r"line 2"):
        config.load(write(tmp_path, "[mqtt]\nport = = 1\n"), env={})


def test_env_overrides_and_their_errors(tmp_path):
    path = write(tmp_path, "[mqtt]\nport = 1883\n")
    cfg = config.load(path, env={"WARDWATCH_MQTT_PORT": "8883", "WARDWATCH_MQTT_WARDS": "w1,w2",
                                 "WARDWATCH_INFLUX_TOKEN": "s3cret", "WARDWATCH_STATE_DIR": "/tmp/x"})
    assert (cfg.mqtt.port, cfg.mqtt.wards, cfg.influx_token(), cfg.state_dir) == (8883, ["w1", "w2"], "s3cret", "/tmp/x")
    with pytest.raises(config.ConfigError, match="WARDWATCH_MQTT_PORT"):
        config.load(path, env={"WARDWATCH_MQTT_PORT": "many"})


def test_secrets_from_files_and_redacted(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    cfg = config.load(write(tmp_path, f'[mqtt]\npassword_file = "{secret}"\n[influx]\ntoken = "tok"\n'), env={})
    assert cfg.mqtt_password() == "hunter2"
    red = cfg.redacted()
    assert red["influx"]["token"] == "***" and "hunter2" not in str(red)


def test_unreadable_secret_file_names_key(tmp_path):
    cfg = config.load(write(tmp_path, '[mqtt]\npassword_file = "/nonexistent/pw"\n'), env={})
    with pytest.raises(config.ConfigError, match="mqtt.password_file"):
        cfg.mqtt_password()


def test_secrets_from_the_systemd_credentials_directory(tmp_path, monkeypatch):
    # What `wardwatch provision gateway` sets up: LoadCredential= puts the files in
    # $CREDENTIALS_DIRECTORY and the unit's environment names them credential:NAME.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("hunter2\n")
    (creds / "influx-token").write_text("tok-123")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("WARDWATCH_INFLUX_TOKEN_FILE", "credential:influx-token")
    cfg = config.load(write(tmp_path, '[mqtt]\npassword_file = "credential:mqtt-password"\n'))
    assert (cfg.mqtt_password(), cfg.influx_token()) == ("hunter2", "tok-123")
    assert cfg.mqtt.password_file == str(creds / "mqtt-password")
    assert "hunter2" not in str(cfg.redacted())


@pytest.mark.parametrize(("value", "env", "message"), [
    ("credential:mqtt-password", {}, r"mqtt.password_file: 'credential:mqtt-password' needs \$CREDENTIALS_DIRECTORY"),
    ("credential:../pw", {"CREDENTIALS_DIRECTORY": "/run/credentials/x"}, "mqtt.password_file: .* one file name"),
    ("credential:", {"CREDENTIALS_DIRECTORY": "/run/credentials/x"}, "mqtt.password_file: .* one file name"),
])
def test_credential_names_need_the_directory_and_one_file_name(tmp_path, value, env, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(write(tmp_path, f'[mqtt]\npassword_file = "{value}"\n'), env=env)


def test_a_missing_credential_names_key_and_file(tmp_path):
    cfg = config.load(write(tmp_path, '[influx]\ntoken_file = "credential:influx-token"\n'),
                      env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    with pytest.raises(config.ConfigError, match=f"influx.token_file: cannot read {tmp_path}/influx-token"):
        cfg.influx_token()
