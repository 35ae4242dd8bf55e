"""WordNet 3.0 for nltk, offline, from Debian's ``wordnet-base`` and ``wordnet-sense-index``.

Those packages install the WordNet database files into ``/usr/share/wordnet``. nltk reads
the same files from ``<data dir>/corpora/wordnet/`` plus a small ``lexnames`` file (the 45
lexicographer file names of ``lexnames(5WN)``), which Debian does not ship. nltk refuses
data directories that other accounts can write to, so everything is created ``0755``/``0644``.

:func:`prepare_wordnet` builds such a directory (``hsae data wordnet`` runs it);
:func:`load_wordnet` returns nltk's WordNet reader, preparing the default directory on the
fly when only the Debian files are present. A missing WordNet is a one-line
:class:`~hsae.errors.UserError` saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import warnings
from functools import lru_cache
from pathlib import Path

from hsae.errors import UserError

DEBIAN_DIRS = (Path("/usr/share/wordnet"),)
REQUIRED = ("data.noun", "index.noun", "noun.exc")
INSTALL_HINT = ("install it with `apt-get install wordnet-base wordnet-sense-index` "
                "(then `hsae data wordnet`)")

# lexnames(5WN): file number, name, syntactic category (1 noun, 2 verb, 3 adj, 4 adv)
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    """The ``lexnames`` file: ``NN<TAB>name<TAB>category`` per line."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def default_data_dir() -> Path:
    """``$HSAE_NLTK_DATA``, else ``~/nltk_data`` (a directory nltk searches by default)."""
    return Path(os.environ.get("HSAE_NLTK_DATA") or Path.home() / "nltk_data").expanduser()


def find_debian_wordnet(source: Path | None = None) -> Path | None:
    """The directory holding Debian's WordNet database files, or None."""
    candidates = [Path(source)] if source else [*DEBIAN_DIRS, *_env_dirs()]
    for folder in candidates:
        if all((folder / name).is_file() for name in REQUIRED):
            return folder
    return None


def _env_dirs() -> list[Path]:
    found = []
    if os.environ.get("WNSEARCHDIR"):
        found.append(Path(os.environ["WNSEARCHDIR"]))
    if os.environ.get("WNHOME"):
        found.append(Path(os.environ["WNHOME"]) / "dict")
    return found


def corpus_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "corpora" / "wordnet"


def prepare_wordnet(data_dir: Path | None = None, source: Path | None = None) -> Path:
    """Copy WordNet into ``<data_dir>/corpora/wordnet`` with ``lexnames``; returns ``data_dir``.

    Idempotent: an existing complete copy is refreshed in place. Permissions are set so
    nltk accepts the directory (no group/world write bits).
    """
    data_dir = Path(data_dir or default_data_dir()).expanduser().resolve()
    found = find_debian_wordnet(source)
    if found is None:
        where = source or ", ".join(str(d) for d in DEBIAN_DIRS)
        raise UserError(f"WordNet database files not found in {where}; {INSTALL_HINT}")
    target = corpus_dir(data_dir)
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(found.iterdir()):
        if path.is_file():
            shutil.copyfile(path, target / path.name)
    (target / "lexnames").write_text(lexnames_text())
    _make_private(data_dir)
    return data_dir


def _make_private(data_dir: Path) -> None:
    """``0755`` directories and ``0644`` files from ``data_dir`` down (nltk's requirement)."""
    os.chmod(data_dir, 0o755)
    for current, dirs, files in os.walk(data_dir / "corpora"):
        os.chmod(current, 0o755)
        for name in files:
            os.chmod(Path(current) / name, 0o644)


def check_nltk_accepts(data_dir: Path) -> None:
    """Ask nltk to find ``corpora/wordnet`` under ``data_dir`` (its permission checks included)."""
    import nltk

    try:
        nltk.data.find("corpora/wordnet/lexnames", paths=[str(data_dir)])
    except LookupError as exc:
        lines = [l.strip() for l in str(exc).splitlines() if "chmod" in l or "Refused" in l]
        raise UserError(f"{corpus_dir(data_dir)}: nltk does not accept this directory "
                        f"({'; '.join(lines) or 'not found'})") from None


def has_wordnet(data_dir: Path) -> bool:
    root = corpus_dir(data_dir)
    return all((root / name).is_file() for name in (*REQUIRED, "lexnames"))


@lru_cache(maxsize=4)
def load_wordnet(data_dir: Path | None = None):
    """nltk's WordNet reader over ``data_dir`` (default: :func:`default_data_dir`).

    When that directory lacks WordNet but Debian's files are installed, it is prepared
    first. Otherwise a :class:`UserError` says how to install WordNet.
    """
    data_dir = Path(data_dir or default_data_dir()).expanduser().resolve()
    if not has_wordnet(data_dir):
        if find_debian_wordnet() is None:
            raise UserError(f"WordNet not found (looked in {corpus_dir(data_dir)} and "
                            f"{', '.join(map(str, DEBIAN_DIRS))}); {INSTALL_HINT}")
        prepare_wordnet(data_dir)
    import nltk

    if str(data_dir) not in nltk.data.path:  # nltk only reads from its data roots
        nltk.data.path.append(str(data_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": omw is not needed
        try:
            return _reader_class()(str(corpus_dir(data_dir)), None)
        except (OSError, PermissionError, LookupError, ValueError) as exc:
            raise UserError(f"{corpus_dir(data_dir)}: nltk cannot read WordNet here ({exc}); "
                            f"rerun `hsae data wordnet --dest {data_dir}`") from None


def _reader_class():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class WordNetReader(WordNetCorpusReader):
        """nltk's reader without the sense-key map to other WordNet versions.

        That map serves only the multilingual (OMW) data, which is not installed here, and
        reading ``index.sense`` twice for it is two thirds of the reader's start-up time.
        """

        def map_wn(self, version: str = "wordnet"):  # noqa: ANN201
            return None

    return WordNetReader
