"""The compose file and the Procfile only name things the project really has."""

import importlib
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands

from tests.conftest import PROJECT_DIR

COMPOSE = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CELERY_SUBCOMMANDS = {"worker", "beat", "flower"}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def assert_command_exists(argv: list[str]) -> None:
    """Checks that ``argv`` runs something of this project, the way the image would."""
    if argv[0].startswith(".venv/bin/"):
        assert (PROJECT_DIR / argv[0]).exists(), argv[0]
        argv = [Path(argv[0]).name, *argv[1:]]
    match argv:
        case ["python", "manage.py", name, *_]:
            assert name in get_commands(), f"manage.py has no command {name!r}"
        case ["gunicorn", target, *_]:
            module, _, attribute = target.partition(":")
            assert hasattr(importlib.import_module(module), attribute), target
        case ["celery", "-A", app_module, subcommand, *_]:
            assert hasattr(importlib.import_module(app_module), "celery_app"), app_module
            assert subcommand in CELERY_SUBCOMMANDS, subcommand
        case ["maildump", *_]:
            assert (PROJECT_DIR / ".venv" / "bin" / "maildump").exists()
        case _:
            pytest.fail(f"unknown command {argv}")


def test_compose_has_every_service_of_a_deployment() -> None:
    assert set(SERVICES) == {"postgres", "redis", "migrate", "web", "worker", "beat", "flower", "mailcatcher"}
    assert "healthcheck" in SERVICES["postgres"]
    assert "healthcheck" in SERVICES["redis"]
    assert SERVICES["mailcatcher"]["profiles"] == ["dev"]
    assert SERVICES["migrate"]["restart"] == "no"


@pytest.mark.parametrize("name", ["migrate", "web", "worker", "beat", "flower", "mailcatcher"])
def test_compose_commands_refer_to_what_the_project_has(name: str) -> None:
    assert_command_exists(command_of(SERVICES[name]))


@pytest.mark.parametrize("name", ["worker", "beat", "flower"])
def test_worker_beat_and_flower_reuse_the_web_definition(name: str) -> None:
    web, service = SERVICES["web"], SERVICES[name]
    for key in ("build", "image", "environment", "env_file", "volumes", "depends_on"):
        assert service[key] == web[key], key
    assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_builds_the_dockerfile_stages_it_names() -> None:
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    for service in SERVICES.values():
        if "build" in service:
            assert f" AS {service['build']['target']}\n" in dockerfile


def test_procfile_commands_refer_to_what_the_project_has() -> None:
    processes = {}
    for line in (PROJECT_DIR / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        processes[name] = shlex.split(command)
    assert set(processes) == {"web", "worker", "beat", "flower", "mail"}
    for argv in processes.values():
        if argv[0] == ".venv/bin/python":
            argv = ["python", *argv[1:]]
        assert_command_exists(argv)
    assert "runserver" in processes["web"]
