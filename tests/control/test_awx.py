"""AWX readiness: the job templates match the playbooks' argument specs, the execution environment builds
a context with ansible-builder, and its pins are the project's pins."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from notification_emergency.inputs import playbook_spec
from tests.conftest import ROOT, VENV_BIN


def _templates() -> dict[str, dict[str, object]]:
    data = yaml.safe_load((ROOT / "awx" / "job_templates.yml").read_text())
    return {template["playbook"]: template for template in data["job_templates"]}


def test_the_generated_file_is_up_to_date() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "awx_job_templates.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_every_playbook_has_a_job_template_whose_survey_is_its_argument_spec() -> None:
    templates = _templates()
    playbooks = {f"playbooks/{p.name}" for p in (ROOT / "playbooks").glob("*.yml")} - {
        "playbooks/sandbox_up.yml",
        "playbooks/sandbox_down.yml",
    }
    assert set(templates) == playbooks
    types = {"bool": "multiplechoice", "int": "integer", "float": "float"}
    for path, template in templates.items():
        spec = playbook_spec(Path(path).name)
        survey = template.get("survey_spec") or {"spec": []}
        assert isinstance(survey, dict)
        questions = {question["variable"]: question for question in survey["spec"]}
        assert set(questions) == set(spec), f"{path}: the survey asks for exactly the playbook's inputs"
        assert template["survey_enabled"] is bool(spec)
        for name, option in spec.items():
            question = questions[name]
            if option.get("type") in types and not option.get("choices"):
                assert question["type"] == types[option["type"]], (path, name)
            if option.get("choices"):
                assert question["choices"] == [str(choice) for choice in option["choices"]], (path, name)
            assert question["required"] is bool(option.get("required", False)), (path, name)


def test_survey_answers_pass_the_playbooks_own_validation() -> None:
    """AWX sends survey answers as strings ("true", "a,b"): the playbook's validate_argument_spec must accept
    what each question can produce."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    for path, template in _templates().items():
        survey = template.get("survey_spec")
        if not isinstance(survey, dict):
            continue
        spec = playbook_spec(Path(path).name)
        for question in survey["spec"]:
            samples = {
                "multiplechoice": question.get("choices", [])[:1],
                "multiselect": [question.get("choices", [])[:1]],
                "integer": [3],
                "float": [2.5],
            }.get(question["type"], [])
            for answer in samples:
                result = ArgumentSpecValidator({question["variable"]: spec[question["variable"]]}).validate(
                    {question["variable"]: answer}
                )
                assert not result.error_messages, (path, question["variable"], answer, result.error_messages)


def test_ansible_builder_creates_the_build_context(tmp_path: Path) -> None:
    """With the collection built first (make collection), as the docs say; the context carries its tarball."""
    built = subprocess.run(
        [str(VENV_BIN / "python"), "scripts/build_collection.py"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    tarball = Path(built.stdout.strip())
    context = tmp_path / "context"
    created = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", str(context)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    build = context / "_build"
    containerfile = next(p for p in (context / "Dockerfile", context / "Containerfile") if p.exists()).read_text()
    assert "pip install --no-cache-dir --no-deps /opt/notification-emergency" in containerfile
    assert (build / "package" / "pyproject.toml").is_file()
    assert (build / "collection" / tarball.name).read_bytes() == tarball.read_bytes()
    assert "ansible-galaxy collection install /opt/notification-emergency-collection/*.tar.gz" in containerfile
    assert (build / "package" / "src" / "notification_emergency" / "cli" / "__init__.py").is_file()
    assert (build / "requirements.txt").read_text() == (ROOT / "requirements" / "ee.txt").read_text()
    assert yaml.safe_load((build / "requirements.yml").read_text()) == yaml.safe_load(
        (ROOT / "requirements.yml").read_text()
    )


def test_the_execution_environment_pins_what_the_project_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())["dependencies"]
    pinned = {line.split("==")[0].lower(): line for line in project}
    assert ee["ansible_core"]["package_pip"] == pinned["ansible-core"]
    assert ee["ansible_runner"]["package_pip"] == pinned["ansible-runner"]
    lines = [
        line.strip()
        for line in (ROOT / "requirements" / "ee.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(lines) == sorted(v for k, v in pinned.items() if k not in ("ansible-core", "ansible-runner"))
    for requirements in (ROOT / "requirements.yml", ROOT / "awx" / "requirements.yml"):
        for collection in yaml.safe_load(requirements.read_text())["collections"]:
            assert collection.get("version"), f"{collection['name']} is pinned in {requirements}"
    # Molecule (through ansible-compat) installs the root requirements.yml, and Galaxy may be out of reach:
    # the project's own needs stay empty.
    assert yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"] == []


def test_awx_is_configured_to_pass_every_extra_var_as_data() -> None:
    """Survey answers are text people type: configure_awx.yml sets ALLOW_JINJA_IN_EXTRA_VARS to never, so AWX
    marks every extra var !unsafe (its default, template, renders the job templates' own extra vars). AWX
    itself does not run here: the setting is read from the playbook that applies it."""
    plays = yaml.safe_load((ROOT / "awx" / "configure_awx.yml").read_text())
    settings = [task["awx.awx.settings"] for task in plays[0]["tasks"] if "awx.awx.settings" in task]
    assert settings == [{"name": "ALLOW_JINJA_IN_EXTRA_VARS", "value": "never"}]
    assert "ALLOW_JINJA_IN_EXTRA_VARS" in (ROOT / "docs" / "awx.md").read_text()
