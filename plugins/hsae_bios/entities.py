"""The entity lists shipped in ``hsae_bios/data`` (names, cities, universities, majors, companies)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hsae.errors import UserError

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Entities:
    """Everything a person is drawn from; ``company_city`` gives each employer's work city."""

    first_names: tuple[tuple[str, str], ...]  # (name, gender "F" or "M")
    middle_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    universities: tuple[str, ...]
    majors: tuple[str, ...]
    company_city: dict[str, str]

    @property
    def companies(self) -> tuple[str, ...]:
        return tuple(self.company_city)


def read_rows(path: Path, n_columns: int = 1) -> list[tuple[str, ...]]:
    """Non-empty, non-``#`` lines of ``path`` split on tabs into ``n_columns`` fields."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read entity file ({exc.strerror or exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = tuple(f.strip() for f in line.split("\t"))
        if len(fields) != n_columns or not all(fields):
            raise UserError(f"{path}:{number}: expected {n_columns} tab-separated field(s), got {line!r}")
        rows.append(fields)
    if not rows:
        raise UserError(f"{path}: entity file is empty")
    if len({r[0] for r in rows}) != len(rows):
        raise UserError(f"{path}: duplicate entries")
    return rows


def load_entities(data_dir: Path = DATA_DIR) -> Entities:
    """Read the entity files of ``data_dir``; a missing or malformed file is a one-line UserError."""
    firsts = read_rows(data_dir / "first_names.txt", 2)
    for name, gender in firsts:
        if gender not in ("F", "M"):
            raise UserError(f"{data_dir / 'first_names.txt'}: gender of {name!r} must be F or M, got {gender!r}")
    return Entities(
        first_names=tuple((n, g) for n, g in firsts),
        middle_names=tuple(r[0] for r in read_rows(data_dir / "middle_names.txt")),
        last_names=tuple(r[0] for r in read_rows(data_dir / "last_names.txt")),
        cities=tuple(r[0] for r in read_rows(data_dir / "cities.txt")),
        universities=tuple(r[0] for r in read_rows(data_dir / "universities.txt")),
        majors=tuple(r[0] for r in read_rows(data_dir / "majors.txt")),
        company_city=dict(read_rows(data_dir / "companies.txt", 2)),
    )
