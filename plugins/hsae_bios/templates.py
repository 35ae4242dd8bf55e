"""Biography and question templates: loading, checking and filling.

Placeholders: ``{name}`` (the subject), ``{name_pos}`` (its possessive) and, in biography
templates, ``{value}``. Filled with a pronoun, a placeholder at the start of the sentence is
capitalised (``She``, ``His``) and lower-case elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hsae.errors import UserError
from hsae_bios.attributes import ATTRIBUTES
from hsae_bios.entities import DATA_DIR

MIN_BIO_TEMPLATES = 20
N_QUESTION_TEMPLATES = 4
PRONOUNS = {"F": ("she", "her"), "M": ("he", "his")}


@dataclass(frozen=True)
class Templates:
    """Per attribute: biography sentence templates and the 4 question templates."""

    biography: dict[str, tuple[str, ...]]
    questions: dict[str, tuple[str, ...]]


def _load_table(path: Path, minimum: int, exact: bool, needs_value: bool) -> dict[str, tuple[str, ...]]:
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read template file ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(table, dict):
        raise UserError(f"{path}: expected an object mapping attributes to template lists")
    unknown = sorted(set(table) - set(ATTRIBUTES))
    if unknown:
        raise UserError(f"{path}: unknown attribute {unknown[0]!r} (known: {', '.join(ATTRIBUTES)})")
    result = {}
    for attribute in ATTRIBUTES:
        templates = table.get(attribute)
        if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
            raise UserError(f"{path}: {attribute}: expected a list of template strings")
        if (len(templates) != minimum) if exact else (len(templates) < minimum):
            wanted = f"exactly {minimum}" if exact else f"at least {minimum}"
            raise UserError(f"{path}: {attribute}: {wanted} templates needed, found {len(templates)}")
        for t in templates:
            if "{name" not in t or (needs_value and "{value}" not in t):
                raise UserError(f"{path}: {attribute}: template {t!r} lacks {{name}}/{{name_pos}} or {{value}}")
        result[attribute] = tuple(templates)
    return result


def load_templates(data_dir: Path = DATA_DIR) -> Templates:
    """Read ``bio_templates.json`` (>= 20 per attribute) and ``qa_templates.json`` (4 per attribute)."""
    return Templates(
        biography=_load_table(data_dir / "bio_templates.json", MIN_BIO_TEMPLATES, exact=False, needs_value=True),
        questions=_load_table(data_dir / "qa_templates.json", N_QUESTION_TEMPLATES, exact=True, needs_value=False),
    )


def fill(template: str, full_name: str, value: str = "", pronoun_gender: str | None = None) -> str:
    """``template`` with the full name, or with a pronoun of ``pronoun_gender`` ("F"/"M") when given."""
    if pronoun_gender is None:
        return template.format(name=full_name, name_pos=f"{full_name}'s", value=value)
    subject, possessive = PRONOUNS[pronoun_gender]
    text = template.format(name="\0" + subject, name_pos="\0" + possessive, value=value)
    if text.startswith("\0"):
        text = text[1:2].upper() + text[2:]
    return text.replace("\0", "")
