"""The seed study's published figures (Wang, Yang & Chen), for reports to sit beside.

Table 1 gives weighted F1, accuracy, precision and recall. Per-class F1 appears only
in the text, listed in the order confused, distracted, happy, neutral, tired — the
order the paper uses for the classes elsewhere; the figures themselves are not in the
text, so that order is the paper's, not checked. Per-class precision and recall are in
the text for "distracted" only (1.00 / 0.02 for Llama, 1.00 / 0.01 for Qwen).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PaperResult:
    model: str
    f1: float
    accuracy: float
    precision: float
    recall: float
    per_class_f1: dict[str, float]
    per_class_precision: dict[str, float] = field(default_factory=dict)
    per_class_recall: dict[str, float] = field(default_factory=dict)
    parameters_b: float = 0.0  # the model's size in billions of parameters, as named
    images: int = 5000  # 1,000 per class


PAPER_ORDER = ("confused", "distracted", "happy", "neutral", "tired")  # the text's order
_TABLE_1 = {  # the model, weighted F1, accuracy, precision, recall
    "qwen": ("Qwen2.5-VL-7B-Instruct", 0.5197, 0.5546, 0.7613, 0.5546),
    "llama": ("Llama-3.2-11B-Vision-Instruct", 0.4519, 0.5118, 0.6473, 0.5118),
}
# From the text: per-class F1 in PAPER_ORDER and the recall of "distracted" (its precision
# is 1.00 for both); then the model's size in billions of parameters, as its name says.
_TEXT = {
    "qwen": ((0.65, 0.01, 0.83, 0.51, 0.59), 0.01, 7),
    "llama": ((0.27, 0.04, 0.92, 0.55, 0.49), 0.02, 11),
}
PAPER_RESULTS = {
    key: PaperResult(
        *_TABLE_1[key],
        per_class_f1=dict(zip(PAPER_ORDER, per_class_f1, strict=True)),
        per_class_precision={"distracted": 1.00},
        per_class_recall={"distracted": distracted_recall},
        parameters_b=parameters_b,
    )
    for key, (per_class_f1, distracted_recall, parameters_b) in _TEXT.items()
}


def paper_result_for(model_name: str, family: str = "") -> PaperResult | None:
    """The paper's row for the same model family, if the paper tested one."""
    text = f"{model_name} {family}".lower().replace("-", "").replace(".", "")
    if "qwen25vl" in text:
        return PAPER_RESULTS["qwen"]
    if "mllama" in text or "llama32vision" in text:
        return PAPER_RESULTS["llama"]
    return None
