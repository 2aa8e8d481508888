"""The YAML reader of bare managed hosts (module_utils/notification_yaml.py) against PyYAML, which nobody here wrote:
for any text it either gives what ``yaml.safe_load`` gives or refuses with the line, never a different answer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.notification_yaml import YamlSubsetError, load_subset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# HYPOTHESIS_EXAMPLES=20000 for a longer search (20,000 each passed on 2026-12-04, 166 s).
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
KEYS = st.from_regex(r"[a-z_][a-z0-9_\-]{0,12}", fullmatch=True).filter(lambda key: key not in {"y", "n"})
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
)
CONFIGS = st.recursive(
    st.dictionaries(KEYS, SCALARS, min_size=1, max_size=5),
    lambda children: st.dictionaries(KEYS, children | SCALARS, min_size=1, max_size=5),
    max_leaves=20,
)


def agrees_or_refuses(text: str) -> Any:
    """What the subset reader gives, checked against PyYAML; None when it refused."""
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(YamlSubsetError):
            load_subset(text)
        return None
    try:
        got = load_subset(text)
    except YamlSubsetError:
        return None
    assert got == expected, text
    return got


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIGS)
def test_what_pyyaml_dumps_in_block_style_reads_the_same(config: dict[str, Any]) -> None:
    text = yaml.safe_dump(config, default_flow_style=False, allow_unicode=True, width=10**6)
    agrees_or_refuses(text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(st.sampled_from(list("ab:#-'\" \n\t01.~[]{}&*|>!%@,?_yesnoTrueFalse")), max_size=60))
def test_any_text_reads_the_same_or_is_refused(text: str) -> None:
    agrees_or_refuses(text)


def test_the_deploy_roles_config_and_secrets_read_without_pyyaml() -> None:
    """The form roles/notification_service/templates/*.j2 write (comments, nested mappings, URLs, JSON strings)."""
    config = """#
# Ansible managed
#
# Configuration of the notification service.
mode: websocket
websocket:
  enabled: true
  host: 127.0.0.1
  port: 47101
  namespace: /notifications
  public_url: http://127.0.0.1:47101
web:
  host: 127.0.0.1
  port: 47100
  workers: 2
redis_url: redis://:p%40ss@127.0.0.1:47102/0
database_url: postgresql://notif@db.example:5432/notif?sslmode=require
log_dir: /srv/notification/log  # where the programs write
api_token: "a\\"quoted\\u00e9 token"
secret_key: 'it''s'
"""
    got = load_subset(config)
    assert got == yaml.safe_load(config)
    assert got["websocket"]["enabled"] is True and got["web"]["port"] == 47100
    assert got["api_token"] == 'a"quotedé token' and got["secret_key"] == "it's"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: [1, 2]", 1),
        ("a:\n  - x", 2),
        ("a: &anchor 1\nb: *anchor", 1),
        ("a: |\n  text", 1),
        ("a: 012", 1),
        ("a: 2026-12-04", 1),
        ("a: 1:30", 1),
        ("a:\n\tb: 1", 2),
        ("yes: 1", 1),
        ("a: 1\n  b: 2", 2),
    ],
)
def test_beyond_the_plain_form_is_refused_naming_the_line(text: str, line: int) -> None:
    with pytest.raises(YamlSubsetError, match=f"^line {line}:"):
        load_subset(text)


def test_the_services_config_error_names_the_file_and_the_fix(tmp_path: Path) -> None:
    """On a host without PyYAML the module's message says what to do (read_yaml, as every module reads config.yml)."""
    import ansible.module_utils.notification_service_config as service_config
    import ansible.module_utils.notification_yaml as host_yaml
    from ansible.module_utils.notification_common import HealthArgumentError

    path = tmp_path / "config.yml"
    path.write_text("mode: websocket\nweb: {port: 1}\n")
    bare = pytest.MonkeyPatch()
    # The one stand-in here: this controller has PyYAML; a bare host's Python does not (tests/ansible runs the
    # modules on real bare interpreters).
    bare.setattr(service_config, "safe_load", host_yaml.load_subset)
    try:
        with pytest.raises(HealthArgumentError) as caught:
            service_config.read_yaml(str(path), "config")
    finally:
        bare.undo()
    message = str(caught.value)
    assert str(path) in message and "line 2" in message and "install PyYAML" in message
