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


def _per_class(*f1: float) -> dict[str, float]:
    return dict(zip(PAPER_ORDER, f1, strict=True))


PAPER_RESULTS = {
    "qwen": PaperResult(
        model="Qwen2.5-VL-7B-Instruct",
        f1=0.5197,
        accuracy=0.5546,
        precision=0.7613,
        recall=0.5546,
        per_class_f1=_per_class(0.65, 0.01, 0.83, 0.51, 0.59),
        per_class_precision={"distracted": 1.00},
        per_class_recall={"distracted": 0.01},
        parameters_b=7,
    ),
    "llama": PaperResult(
        model="Llama-3.2-11B-Vision-Instruct",
        f1=0.4519,
        accuracy=0.5118,
        precision=0.6473,
        recall=0.5118,
        per_class_f1=_per_class(0.27, 0.04, 0.92, 0.55, 0.49),
        per_class_precision={"distracted": 1.00},
        per_class_recall={"distracted": 0.02},
        parameters_b=11,
    ),
}


def paper_result_for(model_name: str, family: str = "") -> PaperResult | None:
    """The paper's row for the same model family, if the paper tested one."""
    text = f"{model_name} {family}".lower().replace("-", "").replace(".", "")
    if "qwen25vl" in text:
        return PAPER_RESULTS["qwen"]
    if "mllama" in text or "llama32vision" in text:
        return PAPER_RESULTS["llama"]
    return None
