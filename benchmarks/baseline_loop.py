"""The baseline: the plain sequential loop over `ollama.chat` a user would write first.

    python benchmarks/baseline_loop.py URL FOLDER     # every FOLDER/<label>/<image>.jpg

One client, one request at a time, the image given as a path (the client reads and
base64-encodes it), a whole (not streamed) reply. It imports nothing of emoprobe.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ollama

PROMPT = (
    "The student in the attached image is watching a teaching video. Classify the "
    "student's expression into one of the following categories: confused, distracted, "
    "happy, tired, or neutral. Provide only the category as your answer."
)


def main() -> None:
    url, folder = sys.argv[1:]
    paths = sorted(str(path) for path in Path(folder).glob("*/*.jpg"))
    client = ollama.Client(host=url)
    answers = 0
    for path in paths:
        reply = client.chat(
            model="qwen2.5vl:7b",
            messages=[
                {"role": "system", "content": PROMPT},
                {"role": "user", "content": "Answer:", "images": [path]},
            ],
            options={"temperature": 0, "seed": 42, "num_predict": 32},
        )
        answers += bool(reply.message.content)
    print(f"{answers} answers")


if __name__ == "__main__":
    main()
