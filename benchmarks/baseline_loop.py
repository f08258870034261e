"""The baseline: the plain sequential loop over `ollama.chat` a user would write first.

    python benchmarks/baseline_loop.py URL FOLDER [--stream]   # FOLDER/<label>/<image>.jpg

One client, one request at a time, the image given as a path (the client reads and
base64-encodes it), a whole (not streamed) reply. It imports nothing of emoprobe.
`--stream`: streamed replies, left at the `done` line as emoprobe does today (a variant
that prices that habit alone).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import ollama

PROMPT = (
    "The student in the attached image is watching a teaching video. Classify the "
    "student's expression into one of the following categories: confused, distracted, "
    "happy, tired, or neutral. Provide only the category as your answer."
)


def main() -> None:
    url, folder, *flags = sys.argv[1:]
    stream = "--stream" in flags
    paths = sorted(str(path) for path in Path(folder).glob("*/*.jpg"))
    client = ollama.Client(host=url)
    answers = 0
    for path in paths:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": PROMPT},
            {"role": "user", "content": "Answer:", "images": [path]},
        ]
        options: dict[str, Any] = {"temperature": 0, "seed": 42, "num_predict": 32}
        if not stream:
            reply = client.chat(model="qwen2.5vl:7b", messages=messages, options=options)
            answers += bool(reply.message.content)
            continue
        text = ""
        for chunk in client.chat(
            model="qwen2.5vl:7b", messages=messages, options=options, stream=True
        ):
            text += chunk.message.content or ""
            if chunk.done:
                break
        answers += bool(text)
    print(f"{answers} answers")


if __name__ == "__main__":
    main()
