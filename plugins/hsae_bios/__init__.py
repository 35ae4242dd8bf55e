"""Biography QA data (seed 003, Physics of Language Models 3.1's bioS).

Plugin contributions: the command ``hsae data bios``, which writes synthetic persons with six
attributes (birth date, birth city, university, major, employer, work city), their
biographies and QA pairs in the seed's formats (``train_kg.json``, ``test_kg.json``,
``qa_*.jsonl``). No components yet: the LM, capture, slot SAE and evaluation come later.
"""

from __future__ import annotations

from hsae.hookspecs import hookimpl


# tryfirst: hsae calls add_commands in get_hookimpls() order, where tryfirst impls come last,
# so ``hsae_lm`` has already created ``hsae data`` when this hook adds ``bios`` under it.
@hookimpl(tryfirst=True)
def hsae_add_commands(subparsers) -> None:  # noqa: ANN001 - argparse subparsers
    from hsae_bios.cli import add_bios_parser

    add_bios_parser(subparsers)
