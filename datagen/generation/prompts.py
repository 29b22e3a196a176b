"""Render seeds into chat requests from few-shot Jinja templates.

A template file defines, with Jinja, three macros and one list:

- ``system()``: the instruction, "in the following examples ...", the closing constraint;
- ``user(sentence)``: one user turn around a sentence (used for the few-shot inputs and the seed);
- ``assistant(shot)``: one few-shot answer;
- ``shots``: the fixed few-shot examples.

The seed is passed to ``user`` as an argument, so it is data and never template
source: a seed ``{{ 7*7 }}`` reaches the LLM as those characters. Templates run in
Jinja's ``SandboxedEnvironment`` with ``StrictUndefined``. The system and few-shot
turns are rendered once per template, so the prefix is byte-identical across rows
(vLLM prefix caching).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from datagen.config import Mode, packaged
from datagen.engines.base import ChatMessage, GenerationRequest
from datagen.errors import TemplateError
from datagen.tasks import get_task

PACKAGED_TEMPLATES = packaged("prompts")


@dataclass(frozen=True)
class PromptTemplate:
    """A rendered-once prompt: fixed prefix plus a way to wrap the anchor."""

    name: str  # "entailment", "positive", ... or "joint"
    prefix: tuple[ChatMessage, ...]  # system + few-shot turns
    sha256: str  # of the template source
    _module: object

    def render(self, sentence: str) -> tuple[ChatMessage, ...]:
        """Chat messages for one seed: the shared prefix, then the seed as the last user turn."""
        return self.prefix + ({"role": "user", "content": _call(self._module, "user", self.name, sentence)},)


def templates_dir(custom: str | Path | None, variant: str | None = None) -> Path:
    """The directory templates are read from: ``custom``, a packaged variant, or the packaged ``prompts/``.

    Raises:
        TemplateError: the directory or the variant does not exist.
    """
    if variant and not custom:
        directory = PACKAGED_TEMPLATES / "variants" / variant
        if not directory.is_dir():
            known = ", ".join(sorted(p.name for p in (PACKAGED_TEMPLATES / "variants").iterdir() if p.is_dir()))
            raise TemplateError(f"no prompt variant '{variant}'; use one of: {known}, or pass --templates DIR")
        return directory
    directory = Path(custom) if custom else PACKAGED_TEMPLATES
    if not directory.is_dir():
        raise TemplateError(f"template directory {directory} does not exist; pass an existing folder to --templates")
    return directory


def template_names(task: str, mode: Mode) -> tuple[str, ...]:
    """Which templates a task/mode needs: one per output field, or a single joint one."""
    return ("joint",) if mode == "joint" else get_task(task).fields


def load_templates(task: str, mode: Mode, directory: str | Path | None = None,
                   variant: str | None = None) -> dict[str, PromptTemplate]:
    """Load and pre-render the templates ``prompts/<task>/<name>.jinja`` for a task and mode.

    Raises:
        TemplateError: a template is missing, has a syntax error, misses a macro, or breaks the sandbox.
    """
    root = templates_dir(directory, variant)
    env = sandbox(root)
    return {name: _load_template(env, root, f"{task}/{name}.jinja", name) for name in template_names(task, mode)}


def sandbox(root: Path) -> SandboxedEnvironment:
    """The Jinja environment every datagen template runs in: sandboxed, undefined names are errors."""
    env = SandboxedEnvironment(loader=FileSystemLoader(str(root)), undefined=StrictUndefined, autoescape=False)
    # Jinja's own tojson is HTML-safe: it writes ' as \u0027, and the few-shot answers taught the model that.
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


def load_module(env: SandboxedEnvironment, root: Path, relative: str):
    """The Jinja module of template ``relative`` (its ``set`` variables and macros), with its sha256.

    Raises:
        TemplateError: missing file, or anything the template raises while loading.
    """
    path = root / relative
    if not path.is_file():
        raise TemplateError(f"template {path} is missing; copy the one from prompts/{relative} into your --templates dir")
    try:
        module = env.get_template(relative).make_module()
    except Exception as exc:  # a user template can raise anything ({{ 1/0 }}); all of it is a template error
        raise TemplateError(f"template {path} failed to load: {type(exc).__name__}: {exc}; fix the template") from exc
    return module, hashlib.sha256(path.read_bytes()).hexdigest()


def call_macro(module: object, macro: str, where: object, *args: object) -> str:
    """Call a template's macro; anything it raises becomes a ``TemplateError`` naming the template."""
    return _call(module, macro, where, *args)


def render_requests(
    templates: dict[str, PromptTemplate], task: str, mode: Mode, anchors: list[tuple[str, str]]
) -> list[GenerationRequest]:
    """Build one request per (anchor key, template).

    Args:
        anchors: ``(key, sentence)`` pairs; the key prefixes the request id.

    Returns:
        Requests with ids ``"<key>/<template name>"``; joint ones carry the JSON schema.
    """
    schema = get_task(task).joint_schema() if mode == "joint" else None
    return [
        GenerationRequest(request_id=f"{key}/{name}", messages=template.render(sentence), json_schema=schema)
        for key, sentence in anchors
        for name, template in templates.items()
    ]


def templates_sha256(templates: dict[str, PromptTemplate]) -> str:
    """One hash over all templates of a run (names and sources), for ids and the fingerprint."""
    digest = hashlib.sha256()
    for name in sorted(templates):
        digest.update(f"{name}:{templates[name].sha256};".encode())
    return digest.hexdigest()


def _load_template(env: SandboxedEnvironment, root: Path, relative: str, name: str) -> PromptTemplate:
    path = root / relative
    if not path.is_file():
        raise TemplateError(f"template {path} is missing; copy the one from prompts/{relative} into your --templates dir")
    source = path.read_bytes()
    try:
        module = env.get_template(relative).make_module()
    except Exception as exc:  # a user template can raise anything ({{ 1/0 }}); all of it is a template error
        raise TemplateError(f"template {path} failed to load: {type(exc).__name__}: {exc}; fix the template") from exc
    shots = getattr(module, "shots", None)
    if not isinstance(shots, (list, tuple)) or not shots:
        raise TemplateError(f"template {path} must define a non-empty `shots` list with {{% set shots = [...] %}}")
    prefix: list[ChatMessage] = [{"role": "system", "content": _call(module, "system", path)}]
    for shot in shots:
        prefix.append({"role": "user", "content": _call(module, "user", path, shot["sentence"])})
        prefix.append({"role": "assistant", "content": _call(module, "assistant", path, shot)})
    return PromptTemplate(name, tuple(prefix), hashlib.sha256(source).hexdigest(), module)


def _call(module: object, macro: str, where: object, *args: object) -> str:
    function = getattr(module, macro, None)
    if function is None:
        raise TemplateError(f"template {where} does not define the macro `{macro}`; see prompts/ for the layout")
    try:
        return str(function(*args)).strip()
    except Exception as exc:  # user template code: SecurityError, UndefinedError, ZeroDivisionError, ...
        raise TemplateError(
            f"template {where} failed in macro `{macro}`: {type(exc).__name__}: {exc}; fix the template"
        ) from exc
