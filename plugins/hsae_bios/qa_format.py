"""How a QA pair reads to the language model, in training and at evaluation.

Training text: ``"<question> Answer: <answer>"`` (the trainer adds BOS/EOS). Evaluation
prompt: ``"<question> Answer:"``; its last token is the *answer position*, whose next-token
prediction is the first answer token. Capture and interventions use that position.
"""

from __future__ import annotations

import re

ANSWER_CUE = "Answer:"


def qa_prompt(question: str) -> str:
    """The prompt whose last token predicts the first answer token."""
    return f"{question} {ANSWER_CUE}"


def qa_text(question: str, answer: str) -> str:
    """A QA pair as a training text."""
    return f"{qa_prompt(question)} {answer}"


def normalize_answer(text: str) -> str:
    """Case- and spacing-insensitive form (a word-level tokenizer decodes ``25,October`` as ``25 , october``)."""
    return re.sub(r"\s+", "", text).lower()
